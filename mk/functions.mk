# Scaling functions' targets (owned by the scaling-library area).
.PHONY: bench-functions

# The handler bench and the native binary use the release profile without fat
# LTO (minutes on a shared 2-core machine); the arm64 size uses the real profile.
BENCH_ENV := CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16

bench-functions: ## scale-up: handler time, cold init, peak RSS, arm64 binary size vs targets
	$(BENCH_ENV) cargo build --release --locked -p scale-up --bin scale-up --target-dir target/bench-functions
	@arm=""; \
	if cargo lambda build --release --arm64 --locked -p scale-up --bin scale-up >/tmp/bench-functions-arm64.log 2>&1; then \
	  arm=target/lambda/scale-up/bootstrap; \
	else echo "arm64 cross-build failed (see /tmp/bench-functions-arm64.log): size shown for native only"; fi; \
	$(BENCH_ENV) cargo run --release --locked -q -p scale-up --example bench --target-dir target/bench-functions -- \
	  target/bench-functions/release/scale-up $$arm
