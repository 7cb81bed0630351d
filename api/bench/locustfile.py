"""The original design's load test against the visits API: 3 visits : 1 stress : 2 metrics.

Run it with `make locust-api` (a local API on a throwaway PostgreSQL) or against any running
stack (`make demo KEEP=1` prints its URL):

    STRESS_TOKEN=... .venv-locust/bin/locust -f api/bench/locustfile.py --headless \
        --host http://127.0.0.1:PORT -u 20 -r 5 -t 60s

The stress task sends the original body, `{"duration": 10, "intensity": 1000000}`, with
`Authorization: Bearer $STRESS_TOKEN`; set `STRESS_DURATION` to shorten the burns. A 429 (every
CPU burn slot taken, `STRESS_MAX_CONCURRENT`) is the API working as designed and is counted as
a success here, like the 201s and 200s; anything else is a failure.
"""

import os

from locust import HttpUser, between, task

STRESS_TOKEN = os.environ.get("STRESS_TOKEN", "")
STRESS_DURATION = int(os.environ.get("STRESS_DURATION", "10"))


class Visitor(HttpUser):
    wait_time = between(0.5, 1.5)

    @task(3)
    def visit(self):
        self.client.post("/api/visit", json={"page": "/locust"})

    @task(1)
    def stress(self):
        with self.client.post(
            "/api/stress",
            json={"duration": STRESS_DURATION, "intensity": 1000000},
            headers={"Authorization": f"Bearer {STRESS_TOKEN}"},
            catch_response=True,
            timeout=STRESS_DURATION + 30,
        ) as resp:
            if resp.status_code in (200, 429):
                resp.success()
            else:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")

    @task(2)
    def metrics(self):
        self.client.get("/api/metrics")
