# Scale-down and drain-instance: the episode benchmark (measured vs target).
.PHONY: bench-scale-down

bench-scale-down: setup ## scale-down: episode time beyond the actual drain vs the 2 s target (real visits-api victim)
	cargo build --locked -p visits-api
	cargo test --locked -p scale-down --test bench -- --ignored --nocapture
