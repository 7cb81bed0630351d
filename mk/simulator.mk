# The scaling simulator (tools/simulator): replays request-rate traces against
# the autoscaler's own decision code, beside target tracking, step scaling, the
# original design and the oracle. See docs/simulator.md.

# The shared traces are read in place, never copied into the repository.
SHARED_TRACES ?= $(CURDIR)/../shared/traces

.PHONY: bench-scaling

bench-scaling: ## replay every shared trace (and the synthetic shapes): a table per trace, plots in target/bench-scaling
	cargo run --locked -q -p simulator -- bench --traces $(SHARED_TRACES) --out $(CURDIR)/target/bench-scaling
