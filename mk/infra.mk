# SAM templates (infra/) and their checks (owned by the infrastructure area).
# aws-sam-cli and checkov get venvs of their own: pip backtracks for many minutes when they share one.
# The SAM venv's cfn-lint is the one that applies the SAM transform (it has aws-sam-translator).

SAM_VENV := $(CURDIR)/.venv-sam
CHECKOV_VENV := $(CURDIR)/.venv-checkov
INFRA_TEMPLATES := $(sort $(wildcard infra/*.yaml))
# Offline checks need a region but no credentials; SAM must not phone home from CI.
INFRA_ENV := AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 SAM_CLI_TELEMETRY=0 \
	SAM_CLI_CONTACT_TRACKING=0 BANDIT_DISABLE=1
# ELF e_machine 0xB7 is aarch64 (checked with od: `file` is not on every machine).
# sam build keeps its artifacts here (git-ignored); cargo's target/ is shared by every build.
SAM_BUILD_DIR := $(CURDIR)/.aws-sam/build
SAM_CACHE_DIR := $(CURDIR)/.aws-sam/cache
# With CI=true the build only has to prove the pipeline (template -> cargo-lambda -> zig -> arm64
# bootstraps), not ship: fat LTO with one codegen unit made four release binaries take 17.5 min
# partly warm (~30 min cold) on 2 cores, too much of `make test`'s 90-minute budget. cargo reads
# CARGO_PROFILE_RELEASE_* from the environment over Cargo.toml's [profile.release], and sam's
# cargo-lambda builder and cargo-lambda pass the environment through to `cargo build` (checked with
# a cargo shim under `sam build`; cargo-lambda adds no --config of its own when the manifest sets
# these). Deploys (`sam build` from samconfig.toml, or this target without CI) keep the full
# profile; the CI build uses its own build and cache dirs, because sam's cache key ignores the
# environment and a later `sam build --cached`/`sam deploy` must never pick up a cheap binary.
ifeq ($(CI),true)
INFRA_BUILD_ENV := CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
SAM_BUILD_DIR := $(CURDIR)/.aws-sam/ci-build
SAM_CACHE_DIR := $(CURDIR)/.aws-sam/ci-cache
endif
LAMBDA_RUST_TARGET := aarch64-unknown-linux-gnu

EXTRA_TESTS += test-infra

.PHONY: infra-venvs infra-rust-target test-infra infra-lint infra-validate infra-checkov infra-build

infra-venvs: $(SAM_VENV)/.installed-requirements-sam.txt $(CHECKOV_VENV)/.installed-requirements-checkov.txt
$(SAM_VENV)/.installed-requirements-sam.txt: tools/requirements-sam.txt tools/setup-venv.sh
	tools/setup-venv.sh $(SAM_VENV) $<
$(CHECKOV_VENV)/.installed-requirements-checkov.txt: tools/requirements-checkov.txt tools/setup-venv.sh
	tools/setup-venv.sh $(CHECKOV_VENV) $<

# Lambda runs the functions on arm64 (Graviton): cargo-lambda cross-compiles with zig, which needs
# the target's standard library from rustup.
infra-rust-target:
	@rustup target list --installed | grep -qx '$(LAMBDA_RUST_TARGET)' \
	  || rustup target add $(LAMBDA_RUST_TARGET) \
	  || { echo "error: rustup could not add $(LAMBDA_RUST_TARGET), which sam build needs (run make setup on a machine that reaches rustup)"; exit 1; }

test-infra: infra-lint infra-validate infra-checkov infra-build ## templates: cfn-lint, sam validate, checkov, sam build

infra-lint: infra-venvs ## cfn-lint with the SAM transform: 0 errors, 0 warnings on every template
	$(INFRA_ENV) $(SAM_VENV)/bin/cfn-lint --format parseable -- $(INFRA_TEMPLATES)
	@echo "cfn-lint: $(words $(INFRA_TEMPLATES)) templates, 0 errors, 0 warnings"

infra-validate: infra-venvs ## sam validate --lint on every template
	@for t in $(INFRA_TEMPLATES); do \
	  echo "sam validate --lint $$t"; \
	  $(INFRA_ENV) $(SAM_VENV)/bin/sam validate --lint --template-file $$t || exit 1; \
	done

infra-checkov: infra-venvs ## checkov: no failed check without an inline justification
	$(INFRA_ENV) $(CHECKOV_VENV)/bin/checkov --directory infra --framework cloudformation \
	  --compact --quiet --skip-download --skip-resources-without-violations

infra-build: infra-venvs infra-rust-target ## sam build: the four functions for arm64 with cargo-lambda
	@start=$$(date +%s); \
	$(INFRA_ENV) $(INFRA_BUILD_ENV) $(SAM_VENV)/bin/sam build --beta-features --template-file infra/template.yaml \
	  --build-dir $(SAM_BUILD_DIR) --cached --cache-dir $(SAM_CACHE_DIR) || exit 1; \
	for f in ScaleUpFunction ScaleDownFunction NotifyFunction DrainInstanceFunction; do \
	  b=$$(find $(SAM_BUILD_DIR) -path "*/$$f/bootstrap" | head -1); \
	  [ -n "$$b" ] || { echo "error: sam build produced no bootstrap for $$f"; exit 1; }; \
	  [ "$$(od -An -tx1 -j18 -N2 "$$b" | tr -d ' ')" = b700 ] || { echo "error: $$b is not an arm64 ELF"; exit 1; }; \
	done; \
	echo "sam build: 4 arm64 bootstraps in $$(( $$(date +%s) - start )) s$(if $(INFRA_BUILD_ENV), (CI profile: $(INFRA_BUILD_ENV)))"
