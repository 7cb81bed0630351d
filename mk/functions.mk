# Scaling functions' targets.
.PHONY: bench-functions

# Handler time, cold init and RSS use a native release build in the shared target
# dir (target/release) with the team's everyday release settings: no fat LTO, 16
# codegen units, so it reuses what other release builds compiled instead of a
# separate target dir (a full rebuild). The arm64 size uses the real release
# profile (fat LTO), as `cargo lambda build` and `sam build` ship it; that build
# lands in target/aarch64-unknown-linux-gnu and takes minutes when scale-up or
# its dependencies changed.
BENCH_ENV := CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16

bench-functions: ## scale-up: handler time, cold init, peak RSS, arm64 binary size vs targets
	$(BENCH_ENV) cargo build --release --locked -p scale-up --bin scale-up --example bench
	@arm=""; \
	echo "cargo lambda build --release --arm64 (fat LTO; log in /tmp/bench-functions-arm64.log)..."; \
	if cargo lambda build --release --arm64 --locked -p scale-up --bin scale-up >/tmp/bench-functions-arm64.log 2>&1; then \
	  arm=target/lambda/scale-up/bootstrap; \
	else echo "arm64 cross-build failed (see /tmp/bench-functions-arm64.log): no arm64 size"; fi; \
	target/release/examples/bench target/release/scale-up $$arm
