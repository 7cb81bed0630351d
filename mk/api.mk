# Visits API targets (owned by the API area).
.PHONY: demo-api bench-api

demo-api: ## the visits API on a throwaway PostgreSQL; prints its URL, Ctrl-C tears down
	@api/scripts/demo.sh

bench-api: postgres ## visits API vs pgbench, GET at 2M rows, RSS, start time: measured vs target
	@api/bench/run.sh
