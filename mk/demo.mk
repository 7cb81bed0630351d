# `make demo` (owned by the demo area): the whole autoscaling loop on the local stack, with a live
# timeline. The root Makefile runs `setup` first (venv with moto and cargo-lambda, PostgreSQL);
# this target adds HAProxy and builds what the demo runs: the API, the functions, the demo binary.
DEMO_TARGET := demo-stack
DEMO_BIN := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/debug/demo

.PHONY: demo-stack

# All binaries at once: `--bin demo` beside `-p visits-api …` would limit the build to that one
# binary, so the API and the functions that the demo runs would never be built on a fresh clone.

demo-stack: ## the autoscaling loop on the local stack (KEEP=1 keeps it up; FAST=1 for short periods)
	@tools/ensure-apt.sh haproxy:haproxy
	$(BUILD_BINS)
	$(DEMO_BIN) $(if $(KEEP),--keep) $(if $(FAST),--fast)
