# The README's commands and their set-up. Each area keeps its targets in mk/*.mk;
# this file holds the two commands that a newcomer types and the shared set-up.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
# Project-local tools (cargo-lambda, moto_server, cfn-lint) come first on PATH.
export PATH := $(VENV)/bin:$(HOME)/.cargo/bin:$(PATH)
export CARGO_TERM_COLOR ?= never
# A compiler cache where the machine has one: the same results, much less time on 2 cores when the
# dependencies were compiled before (another clone, another target dir). Nothing needs it.
ifeq ($(origin RUSTC_WRAPPER),undefined)
ifneq ($(shell command -v sccache 2>/dev/null),)
export RUSTC_WRAPPER := sccache
endif
endif

# Areas append to these in mk/*.mk:
#   TEST_PREREQS  targets that must be ready before `cargo test` (packages, binaries)
#   EXTRA_TESTS   test targets run after `cargo test` (templates, browser, ...)
TEST_PREREQS :=
# Every binary of the workspace in one build, the same command that the tests run when they need a
# binary (test_support::paths::BUILD_BINS): one feature set, so a test finds the binary fresh.
BUILD_BINS := cargo build --locked --workspace --bins
EXTRA_TESTS :=
DEMO_TARGET := demo-api

include $(sort $(wildcard mk/*.mk))

.PHONY: help setup venv postgres haproxy lint test demo

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

setup: venv postgres haproxy ## project venv, PostgreSQL server binaries, HAProxy (what `cargo test` needs)

venv: $(VENV)/.installed-requirements.txt
$(VENV)/.installed-requirements.txt: tools/requirements.txt tools/setup-venv.sh
	tools/setup-venv.sh $(VENV) $<

postgres:
	@tools/ensure-postgres.sh >/dev/null

# HAProxy plays the ALB in the local stack (Debian package).
haproxy:
	@tools/ensure-apt.sh haproxy:haproxy

lint: ## rustfmt and clippy, warnings denied
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

test: setup lint $(TEST_PREREQS) ## every test: lint, unit, integration, end-to-end, templates
	cargo test --workspace --locked --no-fail-fast
	@for t in $(EXTRA_TESTS); do echo "==> make $$t"; $(MAKE) --no-print-directory $$t; done

demo: setup ## the main job on a local stack
	@$(MAKE) --no-print-directory $(DEMO_TARGET)
