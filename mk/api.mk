# Visits API targets (owned by the API area).
.PHONY: demo-api bench-api

demo-api: ## the visits API on a throwaway PostgreSQL; prints its URL, Ctrl-C tears down
	@api/scripts/demo.sh

bench-api: postgres ## visits API vs pgbench, GET at 2M rows, RSS, start time: measured vs target
	@api/bench/run.sh

.PHONY: chaos-api locust-api
chaos-api: postgres ## visits API fault scenarios under load: acknowledged, missing, 503 latency, recovery
	cargo test -p visits-api --test api chaos:: -- --ignored --nocapture --test-threads=1

locust-api: ## the original locust mix (3 visits : 1 stress : 2 metrics); HOST= a running stack, else its own API
	@api/bench/locust.sh
