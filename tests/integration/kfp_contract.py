"""A KFP v2beta1 REST server that holds kfp.Client to the API's own contract, for tests.

No KFP backend can run where kubeline is built (it needs a Kubernetes cluster, Argo and MySQL),
so this is not a stand-in for something that could run here. It is a contract check: the routes,
their query parameters and body types are read from the ``kfp-server-api`` package (the client
KFP generates from its own swagger), and every request is checked against KFP's models before
anything is done:

- a JSON body is walked against the model's ``openapi_types``/``attribute_map``; an unknown
  field, a value of the wrong type or an enum value the model does not allow answers 400, then
  the body is deserialized into the model class (``ApiClient.deserialize``); keys may be the
  proto name or its lowerCamelCase JSON name, as protojson accepts both;
- a query parameter the generated method does not send answers 400; ``filter`` is checked as a
  ``V2beta1Filter``;
- an uploaded pipeline must parse into KFP's ``PipelineSpec`` (and ``PlatformSpec``) protos;
- the fields KFP's API server requires (``REQUIRED``: a display name, a pipeline reference with
  both ids, a trigger, a mode, a max concurrency of 1-10) answer 400 when missing, and a
  pipeline, version or experiment name already taken answers 409, as the backend's
  ``AlreadyExists`` does (recurring runs may share a name there, and here).

Where unsure what the backend tolerates (unknown query parameters, filters other than
``display_name`` equality) it is stricter than the backend: a failure here is a bug in what the
client sends or in this server, never a pass that the backend would refuse for the same reason.
State is in memory. A run advances on each read (pending, running, then an end), and
``fail_next_run(step)`` makes the next run fail at that step with a failed task, as KFP reports
it in ``run_details.task_details``.
"""

from __future__ import annotations

import email.parser
import email.policy
import inspect
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kfp_server_api
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

# int64 fields: the generated models type them 'str', protojson takes a number or a string.
INT64 = {
    ("V2beta1RecurringRun", "max_concurrency"),
    ("V2beta1PeriodicSchedule", "interval_second"),
    ("V2beta1Predicate", "long_value"),
}
# An enum may be sent as its number; the numbers are filter.proto's (they skip 4).
ENUM_NUMBERS = {
    "V2beta1PredicateOperation": {
        0: "OPERATION_UNSPECIFIED",
        1: "EQUALS",
        2: "NOT_EQUALS",
        3: "GREATER_THAN",
        5: "GREATER_THAN_EQUALS",
        6: "LESS_THAN",
        7: "LESS_THAN_EQUALS",
        8: "IN",
        9: "IS_SUBSTRING",
    }
}
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 501: 12}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Route:
    """One operation of the generated client: how it is called and what it carries."""

    operation: str  # e.g. run_service_create_run
    method: str
    template: str
    pattern: re.Pattern[str]
    query: frozenset[str]
    body_type: str | None
    response_type: str | None
    files: frozenset[str]


def _routes() -> list[Route]:
    """Every operation of every ``*ServiceApi`` class, read from its generated source."""
    routes = []
    for api_name in dir(kfp_server_api.api):
        api = getattr(kfp_server_api.api, api_name)
        if not api_name.endswith("Api") or not inspect.isclass(api):
            continue
        for name, function in inspect.getmembers(api, inspect.isfunction):
            if not name.endswith("_with_http_info"):
                continue
            source = inspect.getsource(function)
            call = re.search(r"call_api\(\s*'([^']+)', '(\w+)'", source)
            if call is None:
                continue
            template, method = call.groups()
            body = re.search(r"body_params = local_var_params\['(\w+)'\]", source)
            body_type = None
            if body:
                typed = re.search(rf":type {body.group(1)}: (\w+)", source)
                body_type = typed.group(1) if typed else None
            response = re.search(r"response_type='([^']+)'", source)
            regex = re.sub(r"\\\{[^}]+\\\}", "([^/:]+)", re.escape(template))
            routes.append(
                Route(
                    name.removesuffix("_with_http_info"),
                    method,
                    template,
                    re.compile(f"^{regex}$"),
                    frozenset(re.findall(r"query_params.append\(\('(\w+)'", source)),
                    body_type,
                    response.group(1) if response else None,
                    frozenset(re.findall(r"local_var_files\['(\w+)'\]", source)),
                )
            )
    # Literal paths first: /pipelines/upload is not /pipelines/{pipeline_id}.
    return sorted(routes, key=lambda r: -len(re.sub(r"\{[^}]+\}", "", r.template)))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def check_json(value: Any, type_name: str, where: str, owner: str = "", attr: str = "") -> Any:
    """``value`` checked against the model type ``type_name``; keys normalized to proto names."""
    if value is None:
        return None
    if type_name.startswith("list["):
        if not isinstance(value, list):
            raise ApiError(400, f"{where}: expected a list, got {type(value).__name__}")
        inner = type_name[5:-1]
        return [check_json(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            raise ApiError(400, f"{where}: expected an object, got {type(value).__name__}")
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        return {k: check_json(v, inner, f"{where}.{k}") for k, v in value.items()}
    if type_name == "object":
        return value
    if type_name == "str":
        if (owner, attr) in INT64 and isinstance(value, int) and not isinstance(value, bool):
            return value
        if (owner, attr) in INT64 and not str(value).lstrip("-").isdigit():
            raise ApiError(400, f"{where}: expected an int64, got {value!r}")
        if not isinstance(value, str):
            raise ApiError(400, f"{where}: expected a string, got {type(value).__name__}")
        return value
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"{where}: expected an integer, got {value!r}")
        return value
    if type_name == "bool":
        if not isinstance(value, bool):
            raise ApiError(400, f"{where}: expected true or false, got {value!r}")
        return value
    if type_name in ("datetime", "date"):
        try:
            datetime.fromisoformat(str(value))
        except ValueError:
            raise ApiError(400, f"{where}: {value!r} is not an RFC 3339 time") from None
        return value
    model = getattr(kfp_server_api.models, type_name, None)
    if model is None:
        raise ApiError(400, f"{where}: the contract knows no type {type_name}")
    allowed = getattr(model, "allowable_values", None)
    if allowed is not None:
        numbers = ENUM_NUMBERS.get(type_name, {})
        if isinstance(value, int) and not isinstance(value, bool) and value in numbers:
            return numbers[value]
        if value not in allowed:
            raise ApiError(400, f"{where}: {value!r} is not one of {', '.join(allowed)}")
        return value
    if not isinstance(value, dict):
        raise ApiError(400, f"{where}: expected a {type_name} object, got {type(value).__name__}")
    by_key = {}
    for attribute, key in model.attribute_map.items():
        # protojson reads a field by its proto name or its JSON name (recurring_runs, recurringRuns)
        by_key[attribute] = attribute
        by_key[key] = attribute
        by_key[_camel(key)] = attribute
    out = {}
    for key, item in value.items():
        attribute = by_key.get(key)
        if attribute is None:
            raise ApiError(400, f"{where}: {type_name} has no field {key!r}")
        out[model.attribute_map[attribute]] = check_json(
            item, model.openapi_types[attribute], f"{where}.{key}", type_name, attribute
        )
    return out


class _Body:
    """What ``ApiClient.deserialize`` reads: a response with ``data``."""

    def __init__(self, data: Any) -> None:
        self.data = json.dumps(data)


def _get(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)  # type: ignore[assignment]
    return data


# Fields KFP's API server refuses to go without (its validation, not the swagger's).
REQUIRED = {
    "pipeline_service_create_pipeline": ["display_name"],
    "experiment_service_create_experiment": ["display_name"],
    "run_service_create_run": ["display_name"],
    "recurring_run_service_create_recurring_run": ["display_name", "mode", "trigger"],
}


@dataclass
class FailPlan:
    step: str
    message: str


@dataclass
class Contract:
    """The API's state and its handlers; ``requests`` logs every call as (method, operation)."""

    token: str | None = None
    cookie: str | None = None  # as a login proxy wants its session cookie
    requests: list[tuple[str, str]] = field(default_factory=list)
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)  # version id -> spec
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_plan: FailPlan | None = None
    errors: list[str] = field(default_factory=list)  # every 4xx/5xx answered, for assertions
    routes: list[Route] = field(default_factory=_routes)
    lock: threading.Lock = field(default_factory=threading.Lock)
    api: Any = field(default_factory=kfp_server_api.ApiClient)

    def fail_next_run(self, step: str, message: str = "exit status 1") -> None:
        self.fail_plan = FailPlan(step, message)

    def operations(self, since: int = 0) -> list[str]:
        return [op for _, op in self.requests[since:]]

    # -- dispatch --------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        route, arguments = self._route(method, parts.path)
        with self.lock:
            self.requests.append((method, route.operation))
            if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthenticated: no valid bearer token")
            if self.cookie is not None and self.cookie not in headers.get("cookie", "").split("; "):
                raise ApiError(403, "Forbidden: no session cookie")
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            unknown = sorted(set(query) - route.query)
            if unknown:
                raise ApiError(400, f"{route.operation} takes no query parameter {unknown}")
            if query.get("filter"):
                query["filter"] = self._filter(query["filter"])
            payload: Any = None
            if route.files:
                payload = self._multipart(headers.get("content-type", ""), body, route.files)
            elif route.body_type is not None:
                try:
                    raw = json.loads(body or b"null")
                except ValueError:
                    raise ApiError(400, "the body is not JSON") from None
                checked = check_json(raw, route.body_type, route.body_type)
                for name in REQUIRED.get(route.operation, []):
                    if _get(checked or {}, name) in (None, "", {}):
                        raise ApiError(400, f"{route.body_type}.{name} is required")
                payload = self.api.deserialize(_Body(checked), route.body_type)
            handler = getattr(self, route.operation, None)
            if handler is None:
                raise ApiError(501, f"the contract server does not implement {route.operation}")
            result = handler(*arguments, query=query, body=payload)
            if route.response_type and result is not None:
                # What goes out is checked too, and serialized under the model's JSON names.
                result = check_json(
                    result, route.response_type, f"(response) {route.response_type}"
                )
                model = self.api.deserialize(_Body(result), route.response_type)
                return 200, self.api.sanitize_for_serialization(model)
            return 200, {}

    def _route(self, method: str, path: str) -> tuple[Route, tuple[str, ...]]:
        for route in self.routes:
            match = route.pattern.match(path)
            if match and route.method == method:
                return route, match.groups()
        raise ApiError(404, f"no {method} {path} in the KFP v2beta1 API")

    def _filter(self, text: str) -> dict[str, Any]:
        try:
            raw = json.loads(text)
        except ValueError:
            raise ApiError(400, f"filter {text!r} is not JSON") from None
        checked = check_json(raw, "V2beta1Filter", "filter")
        for predicate in checked.get("predicates", []):
            if predicate.get("operation") != "EQUALS" or predicate.get("key") not in (
                "display_name",
                "name",
            ):
                raise ApiError(400, f"the contract supports only display_name EQUALS: {predicate}")
            if "string_value" not in predicate:
                raise ApiError(400, f"filter predicate {predicate} has no string_value")
        return checked

    def _multipart(self, content_type: str, body: bytes, files: frozenset[str]) -> dict[str, bytes]:
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(400, f"an upload is multipart/form-data, not {content_type!r}")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        parts: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name not in files:
                raise ApiError(400, f"the upload has an unknown form field {name!r}")
            parts[str(name)] = part.get_payload(decode=True) or b""
        missing = files - set(parts)
        if missing:
            raise ApiError(400, f"the upload has no {sorted(missing)}")
        return parts

    @staticmethod
    def _spec(data: bytes) -> dict[str, Any]:
        """The uploaded YAML, parsed into KFP's PipelineSpec (and PlatformSpec) protos."""
        try:
            documents = [d for d in yaml.safe_load_all(data) if d is not None]
            json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
            for extra in documents[1:]:
                json_format.ParseDict(extra, pipeline_spec_pb2.PlatformSpec())
        except (yaml.YAMLError, IndexError, json_format.ParseError) as exc:
            raise ApiError(400, f"the upload is not a KFP pipeline spec: {exc}") from None
        return dict(documents[0])

    @staticmethod
    def _listed(items: list[dict[str, Any]], query: dict[str, Any]) -> list[dict[str, Any]]:
        for predicate in (query.get("filter") or {}).get("predicates", []):
            items = [i for i in items if i.get("display_name") == predicate["string_value"]]
        sort = query.get("sort_by", "")
        if sort not in ("", "created_at desc", "created_at"):
            raise ApiError(400, f"the contract sorts only by created_at, not {sort!r}")
        items = sorted(items, key=lambda i: i["created_at"], reverse=sort == "created_at desc")
        size = query.get("page_size") or "10"
        if not size.isdigit():
            raise ApiError(400, f"page_size {size!r} is not a number")
        return items[: int(size)]

    # -- handlers: named after the generated client's operations -----------------------------

    def healthz_service_get_healthz(self, **_: Any) -> dict[str, Any]:
        return {"multi_user": False}

    def _new_pipeline(self, name: str, description: str | None, namespace: str | None) -> str:
        if any(p["display_name"] == name for p in self.pipelines.values()):
            raise ApiError(409, f"a pipeline named {name!r} already exists")
        return _insert(
            self.pipelines,
            "pipeline_id",
            display_name=name,
            name=name,
            description=description,
            namespace=namespace,
        )

    def pipeline_service_create_pipeline(self, *, body: Any, **_: Any) -> dict[str, Any]:
        return self.pipelines[
            self._new_pipeline(body.display_name, body.description, body.namespace)
        ]

    def _new_version(self, pipeline_id: str, name: str, spec: dict[str, Any], desc: Any) -> str:
        # KFP's unique index idx_pipelineid_name: (PipelineId, Name).
        if any(
            v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.versions.values()
        ):
            raise ApiError(409, f"the pipeline already has a version named {name!r}")
        version_id = _insert(
            self.versions,
            "pipeline_version_id",
            pipeline_id=pipeline_id,
            display_name=name,
            name=name,
            description=desc,
        )
        self.specs[version_id] = spec
        return version_id

    def upload_pipeline(self, *, query: dict[str, Any], body: Any, **_: Any) -> dict[str, Any]:
        name = query.get("display_name") or query.get("name")
        if not name:
            raise ApiError(400, "upload_pipeline needs name or display_name")
        spec = self._spec(body["uploadfile"])
        pipeline_id = self._new_pipeline(name, query.get("description"), query.get("namespace"))
        self._new_version(pipeline_id, name, spec, query.get("description"))  # as KFP does
        return self.pipelines[pipeline_id]

    def upload_pipeline_version(
        self, *, query: dict[str, Any], body: Any, **_: Any
    ) -> dict[str, Any]:
        pipeline_id = query.get("pipelineid")
        if not pipeline_id:
            raise ApiError(400, "upload_pipeline_version needs pipelineid")
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"no pipeline {pipeline_id}")
        name = query.get("display_name") or query.get("name")
        if not name:
            raise ApiError(400, "upload_pipeline_version needs name or display_name")
        spec = self._spec(body["uploadfile"])
        return self.versions[self._new_version(pipeline_id, name, spec, query.get("description"))]

    def pipeline_service_list_pipelines(self, *, query: dict[str, Any], **_: Any) -> Any:
        found = self._listed(list(self.pipelines.values()), query)
        return {"pipelines": found, "total_size": len(found)}

    def pipeline_service_list_pipeline_versions(
        self, pipeline_id: str, *, query: dict[str, Any], **_: Any
    ) -> Any:
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"no pipeline {pipeline_id}")
        mine = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        found = self._listed(mine, query)
        return {"pipeline_versions": found, "total_size": len(found)}

    def pipeline_service_get_pipeline_version(
        self, pipeline_id: str, version_id: str, **_: Any
    ) -> Any:
        version = self.versions.get(version_id)
        if version is None or version["pipeline_id"] != pipeline_id:
            raise ApiError(404, f"no version {version_id} of pipeline {pipeline_id}")
        return version

    def experiment_service_create_experiment(self, *, body: Any, **_: Any) -> Any:
        if any(e["display_name"] == body.display_name for e in self.experiments.values()):
            raise ApiError(409, f"an experiment named {body.display_name!r} already exists")
        experiment_id = _insert(
            self.experiments,
            "experiment_id",
            display_name=body.display_name,
            description=body.description,
            namespace=body.namespace,
            storage_state="AVAILABLE",
        )
        return self.experiments[experiment_id]

    def experiment_service_list_experiments(self, *, query: dict[str, Any], **_: Any) -> Any:
        found = self._listed(list(self.experiments.values()), query)
        return {"experiments": found, "total_size": len(found)}

    def _reference(self, body: Any, what: str) -> dict[str, str]:
        """The pipeline version a run or recurring run names: both ids, and they must match."""
        if body.experiment_id and body.experiment_id not in self.experiments:
            raise ApiError(404, f"no experiment {body.experiment_id}")
        reference = body.pipeline_version_reference
        if reference is None:
            raise ApiError(400, f"{what}.pipeline_version_reference is required")
        if not reference.pipeline_id or not reference.pipeline_version_id:
            raise ApiError(
                400, f"{what}.pipeline_version_reference needs pipeline_id and pipeline_version_id"
            )
        version = self.versions.get(reference.pipeline_version_id)
        if version is None or version["pipeline_id"] != reference.pipeline_id:
            raise ApiError(404, f"no version {reference.pipeline_version_id} of that pipeline")
        return {
            "pipeline_id": reference.pipeline_id,
            "pipeline_version_id": version["pipeline_version_id"],
        }

    def _parameters(self, body: Any, version_id: str) -> dict[str, Any]:
        """The run's inputs, checked against the uploaded spec's root inputs, as the driver does."""
        given = (body.runtime_config.parameters if body.runtime_config else None) or {}
        inputs = self.specs[version_id]["root"].get("inputDefinitions", {}).get("parameters", {})
        unknown = sorted(set(given) - set(inputs))
        if unknown:
            raise ApiError(400, f"the pipeline has no input {unknown}")
        missing = sorted(n for n, d in inputs.items() if not d.get("isOptional") and n not in given)
        if missing:
            raise ApiError(400, f"the pipeline's required inputs {missing} are not set")
        return dict(given)

    def run_service_create_run(self, *, body: Any, **_: Any) -> Any:
        reference = self._reference(body, "V2beta1Run")
        parameters = self._parameters(body, reference["pipeline_version_id"])
        run_id = _insert(
            self.runs,
            "run_id",
            experiment_id=body.experiment_id,
            display_name=body.display_name,
            pipeline_version_reference=reference,
            runtime_config={"parameters": parameters},
            state="PENDING",
            storage_state="AVAILABLE",
            _fail=self.fail_plan,
        )
        self.fail_plan = None
        return _public(self.runs[run_id])

    def run_service_get_run(self, run_id: str, **_: Any) -> Any:
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(404, f"no run {run_id}")
        self._advance(run)
        return _public(run)

    def _advance(self, run: dict[str, Any]) -> None:
        """Pending, then running, then an end: each read moves a run one state on."""
        if run["state"] == "PENDING":
            run["state"] = "RUNNING"
            return
        if run["state"] != "RUNNING":
            return
        plan: FailPlan | None = run["_fail"]
        version_id = run["pipeline_version_reference"]["pipeline_version_id"]
        steps = _in_order(self.specs[version_id]["root"]["dag"]["tasks"])
        if plan is not None and plan.step not in steps:
            raise ApiError(500, f"the test asked {plan.step!r} to fail; the spec has {steps}")
        tasks = []
        for step in steps:
            failed = plan is not None and step == plan.step
            tasks.append(
                {
                    "run_id": run["run_id"],
                    "task_id": str(uuid.uuid4()),
                    "display_name": step,
                    "state": "FAILED" if failed else "SUCCEEDED",
                    **({"error": {"code": 2, "message": plan.message}} if failed and plan else {}),
                }
            )
            if failed:
                break
        root_state = "FAILED" if plan is not None else "SUCCEEDED"
        root = {
            "run_id": run["run_id"],
            "task_id": str(uuid.uuid4()),
            "display_name": self.specs[version_id]["pipelineInfo"]["name"],
            "state": root_state,
            "child_tasks": [{"task_id": t["task_id"]} for t in tasks],
        }
        run["state"] = root_state
        run["finished_at"] = _now()
        run["run_details"] = {"task_details": [root, *tasks]}
        if plan is not None:
            run["error"] = {"code": 2, "message": f"task {plan.step} failed"}

    def run_service_list_runs(self, *, query: dict[str, Any], **_: Any) -> Any:
        runs = list(self.runs.values())
        if query.get("experiment_id"):
            runs = [r for r in runs if r["experiment_id"] == query["experiment_id"]]
        found = [_public(r) for r in self._listed(runs, query)]
        return {"runs": found, "total_size": len(found)}

    def recurring_run_service_create_recurring_run(self, *, body: Any, **_: Any) -> Any:
        reference = self._reference(body, "V2beta1RecurringRun")
        parameters = self._parameters(body, reference["pipeline_version_id"])
        trigger = body.trigger
        cron = trigger.cron_schedule.cron if trigger.cron_schedule else None
        if not cron and not (
            trigger.periodic_schedule and trigger.periodic_schedule.interval_second
        ):
            raise ApiError(400, "a trigger needs cron_schedule.cron or periodic_schedule")
        if cron and len(cron.split()) not in (5, 6) and not cron.startswith("@"):
            raise ApiError(400, f"cron {cron!r}: robfig/cron v1 takes 5 or 6 fields")
        concurrency = int(body.max_concurrency or 0)
        if not 1 <= concurrency <= 10:
            raise ApiError(400, f"max_concurrency {concurrency} is not between 1 and 10")
        # No uniqueness check: KFP's Job table has no unique name, so two of a name can exist and
        # only the tests' counts show that kubeline replaced rather than added one.
        recurring_id = _insert(
            self.recurring,
            "recurring_run_id",
            experiment_id=body.experiment_id,
            display_name=body.display_name,
            description=body.description,
            pipeline_version_reference=reference,
            runtime_config={"parameters": parameters},
            trigger={"cron_schedule": {"cron": cron}},
            mode=body.mode,
            max_concurrency=str(concurrency),
            no_catchup=body.no_catchup,
            status="ENABLED" if body.mode == "ENABLE" else "DISABLED",
        )
        return self.recurring[recurring_id]

    def recurring_run_service_list_recurring_runs(self, *, query: dict[str, Any], **_: Any) -> Any:
        found = self._listed(list(self.recurring.values()), query)
        return {"recurring_runs": found, "total_size": len(found)}

    def recurring_run_service_delete_recurring_run(self, recurring_id: str, **_: Any) -> None:
        if self.recurring.pop(recurring_id, None) is None:
            raise ApiError(404, f"no recurring run {recurring_id}")


def _in_order(tasks: dict[str, Any]) -> list[str]:
    """The DAG's task names, each after the tasks it depends on."""
    done: list[str] = []
    while len(done) < len(tasks):
        ready = [
            name
            for name, task in tasks.items()
            if name not in done and set(task.get("dependentTasks", [])) <= set(done)
        ]
        if not ready:
            raise ApiError(400, "the pipeline's DAG has a cycle")
        done.extend(sorted(ready))
    return done


def _insert(table: dict[str, dict[str, Any]], id_key: str, **fields: Any) -> str:
    """A new record with a fresh id and its creation time; returns the id."""
    new_id = str(uuid.uuid4())
    table[new_id] = {id_key: new_id, **fields, "created_at": _now()}
    return new_id


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if not k.startswith("_")}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, payload = self.server.contract.handle(method, self.path, headers, body)
        except Exception as exc:  # a bug here must reach the test as a 500, not a reset
            status = exc.status if isinstance(exc, ApiError) else 500
            message = exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
            payload = {"code": GRPC_CODES.get(status, 2), "message": message, "details": []}
            self.server.contract.errors.append(f"{method} {self.path}: {status} {message}")
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests assert instead
        pass


class _Server(ThreadingHTTPServer):
    contract: Contract


class ContractServer:
    """The contract on 127.0.0.1, on a port the OS picks, in a thread; ``stop()`` ends it."""

    def __init__(self, token: str | None = None, cookie: str | None = None) -> None:
        self.contract = Contract(token=token, cookie=cookie)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.contract = self.contract
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> ContractServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.contract.api.close()
