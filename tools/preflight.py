#!/usr/bin/env python3
"""`make preflight ENV=<env>`: checks, with the operator's own credentials, what a deploy of
samconfig.toml's environment needs before CloudFormation starts, and prints what to fix.

Checks (each prints "ok" or "FIX" with the fix):
  region       samconfig's region for the environment is where the credentials' session points
               (the image must be in that region's ECR; the stack goes there)
  credentials  the credentials work (sts:GetCallerIdentity) and name an account
  concurrency  the account's Lambda concurrency leaves room for the four functions' reserved
               concurrency of 1 each: Lambda keeps 100 unreserved ("Configuring reserved
               concurrency", Lambda developer guide); new accounts often have a limit of 10 or 50,
               and CloudFormation then fails with "decreases account's
               UnreservedConcurrentExecution below its minimum value of [100]"
  email        OperatorEmail is set and looks like an address (not the SET-ME placeholder)
  image        ImageUri is in this account's and region's ECR, and the tag or digest exists

It uses boto3 from the project venv (boto3 reads AWS_PROFILE, AWS_REGION and AWS_ENDPOINT_URL
like the AWS CLI). Exit status 0 only when every check passes.
"""
import argparse
import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import samconfig_params  # noqa: E402

import boto3  # noqa: E402
import botocore.exceptions  # noqa: E402

# Functions with ReservedConcurrentExecutions: 1 in infra/scaling.yaml.
RESERVED_BY_STACK = 4
# Lambda's floor of unreserved concurrency per account and region.
UNRESERVED_MINIMUM = 100
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/"
    r"(?P<repo>[a-z0-9._/-]+?)(?::(?P<tag>[\w.-]+)|@(?P<digest>sha256:[0-9a-f]{64}))$"
)


class Report:
    def __init__(self):
        self.failed = 0

    def ok(self, check, text):
        print(f"ok   {check:<12} {text}")

    def fix(self, check, text):
        self.failed += 1
        print(f"FIX  {check:<12} {text}")


def samconfig_region(env):
    import tomllib

    config = tomllib.loads(samconfig_params.SAMCONFIG.read_text())
    return config.get(env, {}).get("deploy", {}).get("parameters", {}).get("region")


def check_concurrency(report, session):
    try:
        settings = session.client("lambda").get_account_settings()
    except botocore.exceptions.ClientError as e:
        report.fix("concurrency", f"cannot read Lambda account settings ({e}): allow lambda:GetAccountSettings")
        return
    limit = settings["AccountLimit"]["ConcurrentExecutions"]
    unreserved = settings["AccountLimit"]["UnreservedConcurrentExecutions"]
    need = UNRESERVED_MINIMUM + RESERVED_BY_STACK
    if unreserved >= need:
        report.ok("concurrency", f"limit {limit}, unreserved {unreserved} (need {need})")
        return
    report.fix(
        "concurrency",
        f"limit {limit}, unreserved {unreserved}: the {RESERVED_BY_STACK} functions reserve 1 "
        f"each and Lambda keeps {UNRESERVED_MINIMUM} unreserved, so {need} are needed. Ask for "
        f"more in Service Quotas (AWS Lambda, 'Concurrent executions', code L-B99A9384): "
        f"at least {limit + need - unreserved}",
    )


def check_email(report, params):
    email = params.get("OperatorEmail", "")
    if EMAIL.match(email) and not email.endswith("@example.com"):
        report.ok("email", f"OperatorEmail {email} (confirm the subscription email after the deploy)")
    else:
        report.fix("email", f"OperatorEmail {email!r} is not a real address: set it in samconfig.toml")


def check_image(report, session, params, account, region):
    uri = params.get("ImageUri", "")
    m = IMAGE.match(uri)
    if not m:
        report.fix(
            "image",
            f"ImageUri {uri!r} is not <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>: "
            "push the image (docs/deploy.md) and set it",
        )
        return
    if account and m["account"] != account:
        report.fix("image", f"ImageUri is in account {m['account']}, the credentials are for {account}")
        return
    if m["region"] != region:
        report.fix("image", f"ImageUri is in {m['region']}, the stack deploys to {region}")
        return
    image_id = {"imageTag": m["tag"]} if m["tag"] else {"imageDigest": m["digest"]}
    try:
        session.client("ecr").describe_images(repositoryName=m["repo"], imageIds=[image_id])
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "RepositoryNotFoundException":
            report.fix("image", f"no ECR repository {m['repo']} in {region}: create it and push the image")
        elif code == "ImageNotFoundException":
            report.fix("image", f"{uri} is not in ECR: push it (docker buildx build --platform linux/arm64 ... --push)")
        else:
            report.fix("image", f"cannot check {uri}: {e}")
        return
    report.ok("image", uri)


def main(argv):
    parser = argparse.ArgumentParser(description="check a deploy's prerequisites")
    parser.add_argument("env", nargs="?", default="default", help="samconfig.toml environment")
    parser.add_argument("overrides", nargs="*", help="Key=Value, as `make deploy` passes them")
    args = parser.parse_args(argv)
    params = samconfig_params.environment_params(args.env)
    for change in args.overrides:
        key, _, value = change.partition("=")
        params[key] = value
    report = Report()
    print(f"preflight for samconfig environment {args.env!r}")

    region = samconfig_region(args.env)
    session = boto3.session.Session(region_name=region) if region else boto3.session.Session()
    if not region:
        report.fix("region", f"samconfig.toml sets no region for [{args.env}.deploy.parameters]")
        region = session.region_name
    elif boto3.session.Session().region_name not in (None, region):
        report.ok(
            "region",
            f"{region} from samconfig.toml (your default region is "
            f"{boto3.session.Session().region_name}; sam deploy uses {region})",
        )
    else:
        report.ok("region", region)

    account = None
    try:
        ident = session.client("sts").get_caller_identity()
        account = ident["Account"]
        report.ok("credentials", f"account {account} as {ident['Arn']}")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        report.fix("credentials", f"no working credentials ({e}): run `aws configure` or set AWS_PROFILE")

    if account:
        check_concurrency(report, session)
    check_email(report, params)
    if account:
        check_image(report, session, params, account, region)

    if report.failed:
        print(f"preflight: {report.failed} thing(s) to fix before `make deploy ENV={args.env}`")
        return 1
    print(f"preflight: ready for `make deploy ENV={args.env}`")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
