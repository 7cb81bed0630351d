"""Smithy RPC v2 CBOR in front of moto, translated to and from the JSON protocol.

The Rust SDK's CloudWatch client (aws-sdk-cloudwatch 1.140) speaks RPC v2 CBOR:
`POST /service/<ServiceShape>/operation/<Op>`, header `smithy-protocol:
rpc-v2-cbor`, body application/cbor. moto 5.2 does not, but its CloudWatch
answers the awsJson1_0 protocol, which botocore's model also lists. This WSGI
middleware rewrites such a request to awsJson (`POST /`, `X-Amz-Target:
<targetPrefix>.<Op>`, JSON body), lets moto answer, and encodes moto's JSON
answer back to CBOR, driven by botocore's output shape because CBOR is typed
where JSON is not: the SDK reads timestamps only as CBOR tag 1 (epoch
seconds), doubles only as CBOR floats, blobs only as byte strings.

Generic over services: the operation's service is found by the SigV4 signing
name in the Authorization header, or, failing that, by the service shape name
in the path (botocore's `targetPrefix`), so it also covers any other SDK
client that moves to CBOR, as long as botocore lists `json` for it.

Errors keep moto's status code; the body becomes a CBOR map with `__type` and
`message`, and moto's `x-amzn-query-error` header (how query-compatible
services such as CloudWatch name the error code the SDK matches on) passes
through.

moto 5.2 also lacks CloudWatch DescribeAlarmHistory (HTTP 500), which notify
reads to detect flapping; `wrap` adds it (StateUpdate items from the
transitions moto already records on each alarm).
"""

import base64
import datetime
import gzip
import io
import json
import re

import cbor2
from botocore.loaders import Loader
from botocore.model import ServiceModel
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

_PATH = re.compile(r"^/service/([^/]+)/operation/([^/]+)$")
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
# Headers of moto's answer that still mean something after translation.
_KEPT_HEADERS = ("x-amzn-requestid", "x-amz-request-id", "x-amzn-query-error", "date")

_loader = Loader()
_models = {}  # service shape name -> ServiceModel (or None: not translatable)


def wrap(inner):
    """WSGI middleware: RPC v2 CBOR requests translated, everything else to `inner`."""
    CloudWatchResponse.describe_alarm_history = _describe_alarm_history

    def app(environ, start_response):
        match = _PATH.match(environ.get("PATH_INFO", ""))
        is_cbor = environ.get("HTTP_SMITHY_PROTOCOL", "").lower() == "rpc-v2-cbor"
        if match is None or not is_cbor:
            return inner(environ, start_response)
        model = _service_model(match.group(1), environ.get("HTTP_AUTHORIZATION", ""))
        if model is None:
            body = cbor2.dumps({"__type": "UnknownOperationException", "message": f"no json model for {match.group(1)}"})
            start_response("404 Not Found", _cbor_headers(len(body)))
            return [body]
        return _translate(inner, environ, start_response, model, match.group(2))

    return app


def _translate(inner, environ, start_response, model, op_name):
    raw = _read_body(environ)
    request = _to_json(cbor2.loads(raw)) if raw else {}
    payload = json.dumps(request).encode()
    environ = dict(environ)
    environ.pop("HTTP_SMITHY_PROTOCOL", None)
    environ.pop("HTTP_CONTENT_ENCODING", None)  # the JSON payload goes to moto uncompressed
    environ.update(
        {
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(payload)),
            "HTTP_X_AMZ_TARGET": f"{model.metadata['targetPrefix']}.{op_name}",
            "wsgi.input": io.BytesIO(payload),
        }
    )
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda _data: None

    chunks = inner(environ, capture)
    try:
        answer = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    status = captured["status"]
    kept = [(k, v) for k, v in captured["headers"] if k.lower() in _KEPT_HEADERS]
    if status.startswith("2"):
        output = model.operation_model(op_name).output_shape
        if output is None:
            body = b""
        else:
            body = cbor2.dumps(_to_cbor(_parse_json(answer), output))
    else:
        body = cbor2.dumps(_error(answer, status))
    start_response(status, _cbor_headers(len(body)) + kept)
    return [body]


def _cbor_headers(length):
    return [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"), ("Content-Length", str(length))]


def _read_body(environ):
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    raw = stream.read(int(length)) if length.isdigit() else stream.read()
    # The SDK gzips large bodies of operations with @requestCompression (PutMetricData >= 10 KiB).
    if "gzip" in environ.get("HTTP_CONTENT_ENCODING", "").lower():
        raw = gzip.decompress(raw)
    return raw


def _service_model(shape_name, authorization):
    """botocore's model of the service, if it can be reached over awsJson1_0."""
    if shape_name not in _models:
        _models[shape_name] = _find_model(shape_name, authorization)
    return _models[shape_name]


def _find_model(shape_name, authorization):
    scope = _SCOPE.search(authorization)
    candidates = []
    if scope:
        # The signing name is usually the botocore directory (CloudWatch's "monitoring" is not).
        candidates += [scope.group(1), {"monitoring": "cloudwatch"}.get(scope.group(1), scope.group(1))]
    candidates += _loader.list_available_services("service-2")
    for name in dict.fromkeys(candidates):
        try:
            model = ServiceModel(_loader.load_service_model(name, "service-2"), name)
        except Exception:  # noqa: BLE001 - a candidate name that is no service
            continue
        if model.metadata.get("targetPrefix") == shape_name:
            protocols = model.metadata.get("protocols", [model.protocol])
            return model if "json" in protocols else None
    return None


def _to_json(value):
    """CBOR request values to awsJson: timestamps as epoch seconds, blobs as base64."""
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, cbor2.CBORTag):
        return _to_json(value.value)
    return value


def _parse_json(answer):
    return json.loads(answer) if answer.strip() else {}


def _to_cbor(value, shape):
    """moto's JSON answer to CBOR values of the types botocore's shape names."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                out[name] = _to_cbor(value[name], member)
        return out
    if kind == "list":
        return [_to_cbor(v, shape.member) for v in value]
    if kind == "map":
        return {_to_cbor(k, shape.key): _to_cbor(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        return cbor2.CBORTag(1, _epoch_seconds(value))
    if kind == "blob":
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    if kind in ("double", "float"):
        return float(value)
    if kind in ("integer", "long", "short", "byte"):
        return int(value)
    if kind == "boolean":
        return bool(value)
    return value


def _epoch_seconds(value):
    if isinstance(value, (int, float)):
        seconds = value
    else:
        text = str(value).replace("Z", "+00:00")
        parsed = datetime.datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        seconds = parsed.timestamp()
    # Whole seconds as an integer, the rest as a double: both are valid tag-1 content.
    return int(seconds) if float(seconds).is_integer() else float(seconds)


def _error(answer, status):
    """`__type` and `message` from moto's JSON (or, for a failure before dispatch, XML) error."""
    code, message = None, None
    try:
        parsed = _parse_json(answer)
        code = parsed.get("__type") or parsed.get("code")
        message = parsed.get("message") or parsed.get("Message")
    except (ValueError, AttributeError):
        text = answer.decode(errors="replace")
        found = re.search(r"<Code>([^<]*)</Code>", text)
        code = found.group(1) if found else None
        found = re.search(r"<Message>([^<]*)</Message>", text)
        message = found.group(1) if found else text[:500]
    body = {"__type": code or ("InternalFailure" if status.startswith("5") else "UnknownError")}
    if message:
        body["message"] = message
    return body


def _describe_alarm_history(self):
    """DescribeAlarmHistory for moto: one StateUpdate item per recorded transition."""
    name = self._get_param("AlarmName")
    kinds = self._get_param("HistoryItemType")
    start, end = _as_datetime(self._get_param("StartDate")), _as_datetime(self._get_param("EndDate"))
    alarms = self.cloudwatch_backend.alarms.values()
    items = []
    if kinds in (None, "StateUpdate"):
        for alarm in alarms:
            if name is None or alarm.name == name:
                items += _state_updates(alarm)
    items = [i for i in items if (start is None or i["Timestamp"] >= start) and (end is None or i["Timestamp"] < end)]
    items.sort(key=lambda i: i["Timestamp"], reverse=self._get_param("ScanBy") != "TimestampAscending")
    first = int(self._get_param("NextToken") or 0)
    size = int(self._get_param("MaxRecords") or 100)
    result = {"AlarmHistoryItems": items[first : first + size]}
    if first + size < len(items):
        result["NextToken"] = str(first + size)
    return ActionResult(result)


def _state_updates(alarm):
    """moto's `alarm.history` holds the state before each change; the last change led to the current state."""
    states = [(h[3], h[1], h[4]) for h in alarm.history if h[0] == "StateUpdate"]
    states.append((alarm.state_value, alarm.state_reason, alarm.state_updated_timestamp))
    items = []
    for (old, old_reason, _), (new, reason, at) in zip(states, states[1:]):
        data = {"version": "1.0", "oldState": {"stateValue": old, "stateReason": old_reason}, "newState": {"stateValue": new, "stateReason": reason}}
        items.append(
            {
                "AlarmName": alarm.name,
                "AlarmType": "CompositeAlarm" if alarm.rule is not None else "MetricAlarm",
                "Timestamp": _as_datetime(at),
                "HistoryItemType": "StateUpdate",
                "HistorySummary": f"Alarm updated from {old} to {new}",
                "HistoryData": json.dumps(data),
            }
        )
    return items


def _as_datetime(value):
    """A UTC datetime from moto's naive datetimes or a request's epoch seconds / ISO text."""
    if value is None or isinstance(value, datetime.datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    return datetime.datetime.fromtimestamp(_epoch_seconds(value), datetime.timezone.utc)
