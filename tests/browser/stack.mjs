// A small local stand-in for the deployed service: N real visits-api processes
// on one database, each with its own task identity (from a fake ECS task
// metadata endpoint), behind a round-robin proxy that plays the ALB. The page
// can then show requests spreading across tasks, as it does on AWS.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";

/** A free loopback port (the OS picks; the tiny race before reuse is acceptable here). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server.address().port));
  });
}

/** Serves `GET /<task>/task` the way the ECS agent's metadata endpoint v4 does. */
async function metadataServer() {
  const server = http.createServer((req, res) => {
    const task = req.url.split("/")[1];
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({
      Cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/visits",
      TaskARN: `arn:aws:ecs:us-east-1:123456789012:task/visits/${task}`,
      AvailabilityZone: "us-east-1a",
      Containers: [],
    }));
  });
  return { server, port: await listen(server) };
}

/** Round-robin, request by request, as an ALB does. */
async function roundRobin(backends) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let next = 0;
  const server = http.createServer((req, res) => {
    const port = backends[next++ % backends.length];
    const up = http.request(
      { host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers, agent },
      (upRes) => { res.writeHead(upRes.statusCode, upRes.headers); upRes.pipe(res); },
    );
    up.on("error", () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  return { server, port: await listen(server), agent };
}

async function waitHealthy(url, child, deadlineMs) {
  const end = Date.now() + deadlineMs;
  let last = "no answer";
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`visits-api exited with ${child.exitCode} before it was healthy`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} not healthy after ${deadlineMs} ms (${last})`);
}

/**
 * Starts `tasks` API processes and the proxy. `env` must hold DATABASE_URL;
 * logs go to `logDir/api-<task>.log`. Returns the page's base URL and a stop().
 */
export async function startStack({ apiBin, tasks, env, logDir }) {
  const meta = await metadataServer();
  const children = [];
  const ports = [];
  const ids = [];
  try {
    for (let i = 0; i < tasks; i++) {
      const id = `${"0123456789abcdef".repeat(2).slice(i, i + 8)}task${i + 1}`;
      const port = await freePort();
      const log = createWriteStream(path.join(logDir, `api-${id}.log`));
      const child = spawn(apiBin, [], {
        env: {
          ...process.env,
          ...env,
          BIND_ADDR: "127.0.0.1",
          PORT: String(port),
          ECS_CONTAINER_METADATA_URI_V4: `http://127.0.0.1:${meta.port}/${id}`,
          CLUSTER_NAME: "visits",
          SERVICE_NAME: "visits-api",
          RUST_LOG: process.env.RUST_LOG || "info",
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.stdout.pipe(log);
      child.stderr.pipe(log);
      children.push(child);
      ports.push(port);
      ids.push(id);
    }
    // Startup includes migrations on a fresh database and a cold CPU: be generous.
    await Promise.all(ports.map((p, i) => waitHealthy(`http://127.0.0.1:${p}/health`, children[i], 90000)));
  } catch (e) {
    children.forEach((c) => c.kill("SIGKILL"));
    meta.server.close();
    throw e;
  }
  const proxy = await roundRobin(ports);
  const stop = async () => {
    proxy.server.close();
    proxy.agent.destroy();
    meta.server.close();
    await Promise.all(children.map((c) => new Promise((resolve) => {
      if (c.exitCode !== null) return resolve();
      const kill = setTimeout(() => c.kill("SIGKILL"), 10000);
      c.once("exit", () => { clearTimeout(kill); resolve(); });
      c.kill("SIGTERM");
    })));
  };
  return { baseUrl: `http://127.0.0.1:${proxy.port}`, taskIds: ids, stop };
}
