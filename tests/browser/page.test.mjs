// Drives the visits page in headless Chromium against real visits-api processes
// on a throwaway PostgreSQL (started by run.sh, which exports DATABASE_URL).
// Screenshots land in $ARTIFACTS_DIR for a person to look at.
import assert from "node:assert/strict";
import { execSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";
import { startStack } from "./stack.mjs";

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through tests/browser/run.sh (make test-browser)`);
  return v;
};
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.resolve("../../artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STRESS_TOKEN = "browser-test-stress-token";
const TASKS = 2;
// Generous: a loaded 2-core CI machine may be slow, and these are deadlines, not measurements.
const UI_TIMEOUT = 30000;

let stack;
let browser;
let userDataDir;
let page;
const pageErrors = [];

/** The counter as a number ("1,234" -> 1234). */
async function total() {
  const text = await page.locator("#total").textContent();
  return Number(text.replace(/[^\d]/g, ""));
}

async function waitForTotal(atLeast) {
  await page.waitForFunction(
    (n) => Number(document.getElementById("total").textContent.replace(/[^\d]/g, "")) >= n,
    atLeast,
    { timeout: UI_TIMEOUT },
  );
}

describe("the visits page", { timeout: 300000 }, () => {
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    stack = await startStack({
      apiBin: need("API_BIN"),
      tasks: TASKS,
      env: { DATABASE_URL: need("DATABASE_URL"), STRESS_TOKEN, ADMIN_TOKEN: "browser-test-admin-token" },
      logDir: ARTIFACTS,
    });
    userDataDir = mkdtempSync(path.join(os.tmpdir(), "visits-chromium-"));
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
    });
    page = browser.pages()[0] || (await browser.newPage());
    page.setDefaultTimeout(UI_TIMEOUT);
    page.on("pageerror", (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") pageErrors.push(`console: ${m.text()}`); });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stack?.stop().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it("loads and shows a healthy service, the total and the serving task", async () => {
    const res = await page.goto(stack.baseUrl + "/");
    assert.equal(res.status(), 200);
    assert.match(res.headers()["content-type"], /^text\/html/);
    await page.locator("#health", { hasText: "Service healthy" }).waitFor();
    await page.waitForFunction(() => /^\d[\d,]*$/.test(document.getElementById("total").textContent));
    // The metrics card names one of the tasks we started, with numbers for CPU and memory.
    await page.waitForFunction(
      (ids) => ids.some((id) => document.getElementById("task-id").title === id),
      stack.taskIds,
    );
    await page.locator("#cpu", { hasText: "%" }).waitFor();
    await page.locator("#mem", { hasText: /iB/ }).waitFor();
    await page.locator("#inflight", { hasText: /^\d+$/ }).waitFor();
    assert.deepEqual(pageErrors, [], "no script errors or CSP violations");
  });

  it("registers a visit and the counter goes up", async () => {
    const start = await total();
    await page.getByRole("button", { name: "Register a visit" }).click();
    await page.locator("#visit-status", { hasText: "Visit registered" }).waitFor();
    await waitForTotal(start + 1);
    const first = page.locator("#recent li").first();
    await first.waitFor();
    const task = await first.locator(".task-badge").getAttribute("title");
    assert.ok(stack.taskIds.includes(task), `recent visit served by a known task, got ${task}`);
  });

  it("is usable from the keyboard alone", async () => {
    const start = await total();
    await page.locator("body").focus();
    // Tab to the register button (the skip link and nothing else comes first), then Enter.
    for (let i = 0; i < 10; i++) {
      await page.keyboard.press("Tab");
      if (await page.evaluate(() => document.activeElement?.id === "register")) break;
    }
    assert.equal(await page.evaluate(() => document.activeElement?.id), "register");
    await page.keyboard.press("Enter");
    await waitForTotal(start + 1);
  });

  it("sends 50 concurrent requests and shows how they spread across tasks", async () => {
    const start = await total();
    assert.ok(await page.locator("#spread-bar").isHidden(), "no empty bar before the first run");
    await page.getByRole("button", { name: "Send 50 concurrent requests" }).click();
    await page.locator("#spread-status", { hasText: /50 of 50 served by \d+ tasks?/ }).waitFor();
    const rows = page.locator("#spread-list li");
    assert.equal(await rows.count(), TASKS, "one row per task behind the proxy");
    let sum = 0;
    const colours = new Set();
    for (const row of await rows.all()) {
      assert.ok(stack.taskIds.includes(await row.getAttribute("data-task")));
      sum += Number((await row.locator(".count").textContent()).match(/\d+/)[0]);
      colours.add(await row.locator(".task-badge").evaluate((el) => el.style.getPropertyValue("--c")));
    }
    assert.equal(sum, 50);
    assert.equal(colours.size, TASKS, "a distinct colour per task");
    assert.equal(await page.locator("#spread-bar span").count(), TASKS);
    await waitForTotal(start + 50);
    await page.screenshot({ path: path.join(ARTIFACTS, "web-page.png"), fullPage: true });
  });

  it("shows a clear error when the CPU test token is wrong", async () => {
    const token = page.getByLabel("Stress token");
    await page.getByRole("button", { name: "Start CPU test" }).click();
    await page.locator("#stress-status", { hasText: "Enter the stress token first" }).waitFor();
    await token.fill("not-the-token");
    await page.getByRole("button", { name: "Start CPU test" }).click();
    await page.locator("#stress-status[data-kind=error]", { hasText: "Wrong stress token" }).waitFor();
    assert.equal(await token.getAttribute("aria-invalid"), "true");
    await page.screenshot({ path: path.join(ARTIFACTS, "web-page-bad-token.png") });
  });

  it("runs a short CPU test with the right token", async () => {
    await page.getByLabel("Stress token").fill(STRESS_TOKEN);
    await page.getByLabel("Duration (seconds)").fill("1");
    await page.getByRole("button", { name: "Start CPU test" }).click();
    await page.locator("#stress-status[data-kind=ok]", { hasText: /CPU test done: task \S+ burned [\d.]+ s/ }).waitFor();
    assert.equal(await page.getByLabel("Stress token").getAttribute("aria-invalid"), null);
  });

  it("fits a phone screen without sideways scrolling", async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    await page.reload();
    await page.locator("#health", { hasText: "Service healthy" }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than the phone`);
    await page.screenshot({ path: path.join(ARTIFACTS, "web-page-phone.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("says the database is unavailable when it is", { skip: !process.env.PG_STOP && "PG_STOP not set" }, async () => {
    execSync(process.env.PG_STOP, { stdio: "inherit" });
    await page.reload();
    await page.locator("#health", { hasText: "Database unavailable" }).waitFor();
    await page.getByRole("button", { name: "Register a visit" }).click();
    await page.locator("#visit-status[data-kind=error]", { hasText: "Visit not registered: database unavailable" }).waitFor();
    await page.locator("#visits-load-status[data-kind=error]", { hasText: "database unavailable" }).waitFor();
    await page.waitForFunction(() => !document.getElementById("register").disabled);
    await page.screenshot({ path: path.join(ARTIFACTS, "web-page-db-down.png") });
  });
});
