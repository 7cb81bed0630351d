# Web page targets (owned by the web area).
.PHONY: test-browser
EXTRA_TESTS += test-browser

test-browser: ## the web page in headless Chromium against the real API (screenshots in artifacts/)
	tests/browser/run.sh
