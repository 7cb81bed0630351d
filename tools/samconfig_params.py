#!/usr/bin/env python3
"""Prints one environment's complete parameter list from samconfig.toml, with KEY=VALUE changes.

`sam deploy --parameter-overrides` on the command line REPLACES samconfig's list instead of
merging with it (aws/aws-sam-cli #2380), so `make deploy` passes this merged list: every setting
of the environment, with only the given keys changed. One `Key=Value` per line.

    tools/samconfig_params.py prod ImageUri=123456789012.dkr.ecr.us-east-1.amazonaws.com/visits-api:abc
"""
import shlex
import sys
import tomllib
from pathlib import Path

SAMCONFIG = Path(__file__).resolve().parent.parent / "samconfig.toml"


def environment_params(env: str, path: Path = SAMCONFIG) -> dict:
    """The `parameter_overrides` of `[<env>.deploy.parameters]`, as an ordered dict."""
    config = tomllib.loads(path.read_text())
    try:
        raw = config[env]["deploy"]["parameters"]["parameter_overrides"]
    except KeyError:
        sys.exit(f"samconfig.toml has no [{env}.deploy.parameters] parameter_overrides")
    items = raw if isinstance(raw, list) else shlex.split(raw)
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"samconfig.toml [{env}]: {item!r} is not Key=Value")
        params[key] = value
    return params


def main(argv: list) -> int:
    if not argv:
        sys.exit("usage: samconfig_params.py ENV [Key=Value ...]")
    params = environment_params(argv[0])
    for change in argv[1:]:
        key, sep, value = change.partition("=")
        if not sep or not key:
            sys.exit(f"{change!r} is not Key=Value")
        params[key] = value
    for key, value in params.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
