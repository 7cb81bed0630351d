# Visits API targets (owned by the API area).
.PHONY: demo-api
demo-api:
	@echo "demo-api: not built yet" && exit 1
