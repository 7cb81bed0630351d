# Deploying to AWS (docs/deploy.md). ENV names a samconfig.toml environment (default, prod).
# A command-line --parameter-overrides replaces samconfig's list instead of merging with it
# (aws/aws-sam-cli #2380), so `deploy` passes the environment's complete list from
# samconfig.toml, with only ImageUri replaced when IMAGE is given (and any Key=Value in SET).

ENV ?= default
IMAGE ?=
SET ?=
DEPLOY_OVERRIDES = $(if $(IMAGE),ImageUri=$(IMAGE)) $(SET)

.PHONY: preflight deploy

preflight: venv ## check a deploy's prerequisites with your AWS credentials (ENV=default|prod, IMAGE=uri)
	$(VENV)/bin/python tools/preflight.py $(ENV) $(DEPLOY_OVERRIDES)

deploy: preflight infra-venvs ## sam build + deploy ENV with all its samconfig settings (IMAGE=uri, SET="Key=Value ..." change only those)
	$(SAM_VENV)/bin/sam build --config-env $(ENV)
	mapfile -t params < <(python3 tools/samconfig_params.py $(ENV) $(DEPLOY_OVERRIDES)); \
	$(SAM_VENV)/bin/sam deploy --config-env $(ENV) --parameter-overrides "$${params[@]}"
