# The local stack (tests/, package e2e): what its end-to-end tests need before `cargo test` runs.
# HAProxy plays the ALB (Debian package); the tests run the real binaries of the API and of every
# function, so they are built first (debug, the same profile and target dir as `cargo test`).
TEST_PREREQS += stack-prereqs

.PHONY: stack-prereqs test-stack

stack-prereqs: ## HAProxy + the binaries the end-to-end tests run (API, the four functions)
	@tools/ensure-apt.sh haproxy:haproxy
	$(BUILD_BINS)

test-stack: setup stack-prereqs ## only the local stack's tests (proxy, scale-out, the six end-to-end tests)
	cargo test --locked -p e2e
