# Scale-down and drain-instance: the episode benchmark (measured vs target).
.PHONY: bench-scale-down

bench-scale-down: setup ## scale-in: in-flight drain, overhead beyond it (target <= 2 s), desired-1 -> STOPPED, with keep-alive load
	@tools/ensure-apt.sh haproxy:haproxy
	$(BUILD_BINS)
	cargo test --locked -p e2e --test bench_scale_down -- --ignored --nocapture
	cargo test --locked -p scale-down --test bench -- --ignored --nocapture
