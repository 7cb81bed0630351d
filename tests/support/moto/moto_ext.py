#!/usr/bin/env python3
"""moto server, extended with the APIs the autoscaler needs end to end.

moto 5.2 answers HTTP 500 for ECS UpdateTaskProtection / GetTaskProtection and
Auto Scaling CompleteLifecycleAction / RecordLifecycleActionHeartbeat. The
functions call them for real on the local stack, so this launcher adds them to
moto's response classes (which dispatch by snake_case action name) before the
server starts. The extension keeps its state beside moto's and clears it on
`POST /moto-api/reset`, like everything else.

It also fixes one moto bug the template trips on: RunTask sums the containers'
memory and fails (TypeError, HTTP 500) when a container sets none, which is
valid on Fargate where only the task level sets cpu/memory (infra/service.yaml
does exactly that). A missing container memory now counts as 0.

And, for target groups that opt in (`POST /moto-ext/alb-draining`; the local
stack does, other tests keep moto's behaviour), it gives deregistered targets
the ALB's `draining` state, which moto skips (it drops a target at once): a
deregistered target stays `draining` in
DescribeTargetHealth until the load balancer reports it has no connection
left (`POST /moto-ext/target-drained`, which the local stack's HAProxy sync
sends) or the group's deregistration delay has passed, as on AWS. Registering
it again ends the draining.

It also answers Lambda GetAccountSettings (moto has none), for `make preflight`'s
concurrency check: the limit less the functions' reserved concurrency.

Extra endpoints for the harness (under /moto-ext/, JSON):
  POST /moto-ext/lambda-concurrency-limit {"limit": 50} the account's Lambda
                                        concurrency limit (default 1000)
  GET  /moto-ext/lifecycle-actions      every CompleteLifecycleAction and
                                        RecordLifecycleActionHeartbeat call
  GET  /moto-ext/default-network       {"vpcId", "subnets", "securityGroups"}
                                        of the default VPC (run_task needs them)
  POST /moto-ext/task-status            {"task": ARN, "lastStatus": ..,
                                        "desiredStatus": ..} moves a task the
                                        way the ECS agent would
  POST /moto-ext/alb-draining           {"targetGroupArn"} deregistered targets
                                        of this group drain as on an ALB
  POST /moto-ext/target-drained         {"targetGroupArn", "id"} the load
                                        balancer has no connection left to a
                                        draining target: deregistration completes
  POST /moto-ext/service-counts         {"cluster", "service", "running",
                                        "pending"} sets the service's counts the
                                        way the ECS scheduler would; the PRIMARY
                                        deployment's rollout becomes COMPLETED
                                        once running reaches desired (moto
                                        leaves it IN_PROGRESS forever)

Usage: moto_ext.py [--host 127.0.0.1] [--port 5000]
"""

import argparse
import datetime
import json
import re
import signal
import sys
import types

sys.dont_write_bytecode = True  # importing moto_cbor.py leaves no __pycache__ here
import moto_cbor  # noqa: E402
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.ecs.models import EC2ContainerServiceBackend, ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

DEFAULT_PROTECTION_MINUTES = 120
MAX_PROTECTION_MINUTES = 2880


# The extension's state, per (account, region); cleared on /moto-api/reset.
_PROTECTION = {}
_LIFECYCLE_CALLS = {}
# Deregistered targets still draining: (target group ARN, target id) -> (target dict, until datetime).
_DRAINING = {}
# Target groups whose deregistered targets drain (opt-in: the local stack's).
_ALB_DRAINING_GROUPS = set()


def _protection_store(backend):
    """Per-backend protection map: task ARN -> (enabled, expiration datetime)."""
    return _PROTECTION.setdefault((backend.account_id, backend.region_name), {})


def _find_task(backend, cluster, ident):
    """The task named by ARN or ID in the cluster, or None (like ECS, both forms are accepted)."""
    cluster_name = cluster.split("/")[-1]
    for task_arn, task in backend.tasks.get(cluster_name, {}).items():
        if ident == task_arn or ident == task_arn.split("/")[-1]:
            return task
    return None


def _protected_task(arn, entry):
    enabled, expires = entry
    now = datetime.datetime.now(datetime.timezone.utc)
    if enabled and expires is not None and expires <= now:
        enabled, expires = False, None
    out = {"taskArn": arn, "protectionEnabled": enabled}
    if enabled:
        out["expirationDate"] = expires
    return out


def update_task_protection(self):
    cluster = self._get_param("cluster", "default")
    tasks = self._get_param("tasks", [])
    enabled = bool(self._get_param("protectionEnabled"))
    minutes = self._get_param("expiresInMinutes") or DEFAULT_PROTECTION_MINUTES
    store = _protection_store(self.ecs_backend)
    protected, failures = [], []
    if len(tasks) > 10:
        failures = [{"arn": t, "reason": "TASK_NOT_VALID", "detail": "at most 10 tasks"} for t in tasks]
        return ActionResult({"protectedTasks": [], "failures": failures})
    for ident in tasks:
        task = _find_task(self.ecs_backend, cluster, ident)
        if task is None or task.last_status == "STOPPED":
            failures.append({"arn": ident, "reason": "TASK_NOT_VALID", "detail": "The task was not found or is stopped"})
            continue
        expires = None
        if enabled:
            minutes = max(1, min(int(minutes), MAX_PROTECTION_MINUTES))
            expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
        store[task.task_arn] = (enabled, expires)
        protected.append(_protected_task(task.task_arn, store[task.task_arn]))
    return ActionResult({"protectedTasks": protected, "failures": failures})


def get_task_protection(self):
    cluster = self._get_param("cluster", "default")
    tasks = self._get_param("tasks") or []
    store = _protection_store(self.ecs_backend)
    if not tasks:
        cluster_name = cluster.split("/")[-1]
        tasks = list(self.ecs_backend.tasks.get(cluster_name, {}).keys())
    protected, failures = [], []
    for ident in tasks:
        task = _find_task(self.ecs_backend, cluster, ident)
        if task is None:
            failures.append({"arn": ident, "reason": "TASK_NOT_VALID", "detail": "The task was not found"})
            continue
        protected.append(_protected_task(task.task_arn, store.get(task.task_arn, (False, None))))
    return ActionResult({"protectedTasks": protected, "failures": failures})


def _lifecycle_calls(backend):
    return _LIFECYCLE_CALLS.setdefault((backend.account_id, backend.region_name), [])


def _record_lifecycle(self, action):
    params = {
        key: self._get_param(key)
        for key in (
            "LifecycleHookName",
            "AutoScalingGroupName",
            "LifecycleActionToken",
            "LifecycleActionResult",
            "InstanceId",
        )
    }
    group = params["AutoScalingGroupName"]
    if group not in self.autoscaling_backend.autoscaling_groups:
        return 400, {"status": 400}, _xml_error("ValidationError", f"No Auto Scaling group named {group}")
    params["Action"] = action
    params["Time"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    _lifecycle_calls(self.autoscaling_backend).append(params)
    return EmptyResult()


def _xml_error(code, message):
    return (
        '<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>moto-ext</RequestId></ErrorResponse>"
    )


def complete_lifecycle_action(self):
    return _record_lifecycle(self, "CompleteLifecycleAction")


def record_lifecycle_action_heartbeat(self):
    return _record_lifecycle(self, "RecordLifecycleActionHeartbeat")


_moto_task_requirements = EC2ContainerServiceBackend._calculate_task_resource_requirements


def _task_requirements(task_definition):
    """moto's sum, with containers that set no memory counted as 0 (Fargate: task level only)."""
    patched = [
        c
        if any(k in c for k in ("memory", "memoryReservation", "Memory", "MemoryReservation"))
        else {**c, "memory": 0}
        for c in task_definition.container_definitions
    ]
    # moto reads only .container_definitions; a stand-in keeps the shared model untouched.
    return _moto_task_requirements(types.SimpleNamespace(container_definitions=patched))


EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(_task_requirements)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _draining(group, target_id):
    """The draining entry of a target, dropped once its deregistration delay has passed."""
    key = (group.arn, target_id)
    entry = _DRAINING.get(key)
    if entry is not None and entry[1] <= _now():
        _DRAINING.pop(key, None)
        return None
    return entry


_moto_deregister = FakeTargetGroup.deregister
_moto_register = FakeTargetGroup.register
_moto_health_for = FakeTargetGroup.health_for
_moto_describe_target_health = ELBv2Backend.describe_target_health


def _deregister(self, targets):
    _moto_deregister(self, targets)  # raises InvalidTarget for one not registered
    if self.arn not in _ALB_DRAINING_GROUPS:
        return
    delay = int(self.attributes.get("deregistration_delay.timeout_seconds", 300))
    until = _now() + datetime.timedelta(seconds=delay)
    for target in targets:
        port = target.get("Port", self.port)
        _DRAINING[(self.arn, target["Id"])] = ({"Id": target["Id"], "Port": port}, until)


def _register(self, targets):
    _moto_register(self, targets)
    for target in targets:
        _DRAINING.pop((self.arn, target["Id"]), None)


def _health_for(self, target, ec2_backend):
    if target["Id"] not in self.targets:
        entry = _draining(self, target["Id"])
        if entry is not None:
            return FakeHealthStatus(
                target["Id"],
                entry[0]["Port"],
                self.health_check_port,
                "draining",
                "Target.DeregistrationInProgress",
                "Target deregistration is in progress",
            )
    return _moto_health_for(self, target, ec2_backend)


def _describe_target_health(self, target_group_arn, targets):
    out = _moto_describe_target_health(self, target_group_arn, targets)
    if not targets:
        group = self.target_groups[target_group_arn]
        for (arn, target_id) in list(_DRAINING):
            if arn == group.arn and target_id not in group.targets and _draining(group, target_id):
                out.append(group.health_for(_DRAINING[(arn, target_id)][0], self.ec2_backend))
    return out


FakeTargetGroup.deregister = _deregister
FakeTargetGroup.register = _register
FakeTargetGroup.health_for = _health_for
ELBv2Backend.describe_target_health = _describe_target_health
EC2ContainerServiceResponse.update_task_protection = update_task_protection
EC2ContainerServiceResponse.get_task_protection = get_task_protection
AutoScalingResponse.complete_lifecycle_action = complete_lifecycle_action
AutoScalingResponse.record_lifecycle_action_heartbeat = record_lifecycle_action_heartbeat


def _all_backends(backend_dict):
    for account in list(backend_dict.keys()):
        for region in list(backend_dict[account].keys()):
            yield backend_dict[account][region]


def _ext_app(inner):
    """WSGI middleware: /moto-ext/* here, everything else to moto."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/moto-api/reset":
            _PROTECTION.clear()
            _LIFECYCLE_CALLS.clear()
            _DRAINING.clear()
            _ALB_DRAINING_GROUPS.clear()
            _LAMBDA_LIMIT.clear()
        if path.rstrip("/").endswith("/account-settings") and environ.get("REQUEST_METHOD") == "GET":
            body = _lambda_account_settings(environ)
            return Response(json.dumps(body), status=200, content_type="application/json")(environ, start_response)
        if not path.startswith("/moto-ext/"):
            return inner(environ, start_response)
        request = Request(environ)
        if path == "/moto-ext/lifecycle-actions" and request.method == "GET":
            calls = [call for calls in _LIFECYCLE_CALLS.values() for call in calls]
            body, status = {"calls": calls}, 200
        elif path == "/moto-ext/default-network" and request.method == "GET":
            body, status = _default_network(request.args.get("region", "us-east-1")), 200
        elif path == "/moto-ext/task-status" and request.method == "POST":
            body, status = _set_task_status(json.loads(request.get_data() or b"{}"))
        elif path == "/moto-ext/alb-draining" and request.method == "POST":
            req = json.loads(request.get_data() or b"{}")
            _ALB_DRAINING_GROUPS.add(req.get("targetGroupArn"))
            body, status = {"targetGroupArn": req.get("targetGroupArn")}, 200
        elif path == "/moto-ext/target-drained" and request.method == "POST":
            req = json.loads(request.get_data() or b"{}")
            gone = _DRAINING.pop((req.get("targetGroupArn"), req.get("id")), None)
            body, status = {"drained": gone is not None}, 200
        elif path == "/moto-ext/lambda-concurrency-limit" and request.method == "POST":
            req = json.loads(request.get_data() or b"{}")
            _LAMBDA_LIMIT["limit"] = int(req.get("limit", 1000))
            body, status = {"limit": _LAMBDA_LIMIT["limit"]}, 200
        elif path == "/moto-ext/service-counts" and request.method == "POST":
            body, status = _set_service_counts(json.loads(request.get_data() or b"{}"))
        else:
            body, status = {"error": f"no such endpoint {request.method} {path}"}, 404
        return Response(json.dumps(body), status=status, content_type="application/json")(environ, start_response)

    return app


# Lambda GetAccountSettings, which moto lacks (`make preflight` reads it): the account's
# concurrency limit (1000 by default, as on AWS; `POST /moto-ext/lambda-concurrency-limit`
# sets it, e.g. 50 for a new account) less the functions' reserved concurrency, as AWS
# computes UnreservedConcurrentExecutions ("Lambda quotas", Lambda developer guide).
_LAMBDA_LIMIT = {}


def _lambda_account_settings(environ):
    from moto.awslambda.models import lambda_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = re.search(r"Credential=[^/]+/\d+/([a-z0-9-]+)/", auth)
    region = scope.group(1) if scope else "us-east-1"
    limit = _LAMBDA_LIMIT.get("limit", 1000)
    backend = lambda_backends[DEFAULT_ACCOUNT_ID][region]
    reserved = sum(int(f.reserved_concurrency or 0) for f in backend.list_functions())
    return {
        "AccountLimit": {
            "TotalCodeSize": 80530636800,
            "CodeSizeUnzipped": 262144000,
            "CodeSizeZipped": 52428800,
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": limit - reserved,
        },
        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(backend.list_functions())},
    }


def _default_network(region):
    """Subnets and security group of the default VPC (created on first use),
    which is where run_task in awsvpc mode works in moto."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    vpc = next(v for v in ec2.vpcs.values() if v.is_default)
    subnets = sorted(s.id for s in ec2.describe_subnets() if s.vpc_id == vpc.id)
    groups = [g.id for g in ec2.describe_security_groups() if g.vpc_id == vpc.id and g.name == "default"]
    return {"vpcId": vpc.id, "subnets": subnets, "securityGroups": groups}


def _set_task_status(req):
    arn = req.get("task", "")
    for backend in _all_backends(ecs_backends):
        for tasks in backend.tasks.values():
            task = tasks.get(arn)
            if task is None:
                continue
            if req.get("lastStatus"):
                task.last_status = req["lastStatus"]
            if req.get("desiredStatus"):
                task.desired_status = req["desiredStatus"]
            if req.get("stoppedReason"):
                task.stopped_reason = req["stoppedReason"]
            return {"taskArn": arn, "lastStatus": task.last_status, "desiredStatus": task.desired_status}, 200
    return {"error": f"no task {arn}"}, 404


def _set_service_counts(req):
    cluster = req.get("cluster", "default").split("/")[-1]
    name = req.get("service", "").split("/")[-1]
    running, pending = int(req.get("running", 0)), int(req.get("pending", 0))
    for backend in _all_backends(ecs_backends):
        service = backend.services.get(f"{cluster}:{name}")
        if service is None:
            continue
        service.running_count, service.pending_count = running, pending
        for deployment in service.deployments:
            if deployment.get("status") != "PRIMARY":
                continue
            deployment["runningCount"], deployment["pendingCount"] = running, pending
            # Like ECS: steady state once; later desired-count changes keep it COMPLETED.
            if running >= service.desired_count and pending == 0:
                deployment["rolloutState"] = "COMPLETED"
                deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."
        return {"service": name, "runningCount": running, "pendingCount": pending}, 200
    return {"error": f"no service {cluster}/{name}"}, 404


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, _ext_app(moto_cbor.wrap(app)), threaded=True)


if __name__ == "__main__":
    main()
