"""The REST verbs over HTTP: URL parsing, query parameters, JSON in and out, watch streams, logs.

Paths are parsed as the API server's request-info resolver does: ``/api/v1/...`` is the core
group, ``/apis/GROUP/VERSION/...`` the others; ``namespaces/NS/PLURAL[/NAME[/SUB]]`` for
namespaced types, ``PLURAL[/NAME[/SUB]]`` for cluster-scoped ones and for lists across all
namespaces. The semantics live in ``operations.Cluster``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, AsyncIterator, Callable, Protocol

from aiohttp import web

from . import apply as applying
from . import patch as patches
from . import protobuf
from .operations import Cluster
from .resources import Resource, find
from .selectors import field_selector, label_selector
from .status import ApiError, bad_request, method_not_allowed, unsupported_media_type
from .tables import table, wants_table


# who the request's token authenticates (set by the server's authentication middleware)
USER: Any = web.RequestKey("user", str) if hasattr(web, "RequestKey") else "user"

# what a real server answers for a path it does not serve (note the empty details)
NOT_SERVED = ApiError(404, "NotFound", "the server could not find the requested resource", {})


class LogSource(Protocol):
    def logs(self, pod: dict[str, Any], container: str, follow: bool, tail_lines: int | None,
             timestamps: bool) -> AsyncIterator[bytes]: ...


def respond(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    # RFC 7234 warn-text is a quoted-string: quotes and backslashes in it are escaped
    quoted = [w.replace("\\", "\\\\").replace('"', '\\"') for w in warnings or []]
    headers = {"Warning": ", ".join(f'299 - "{w}"' for w in quoted)} if quoted else None
    return web.json_response(body, status=status, headers=headers, dumps=json.dumps)


def error_response(error: ApiError) -> web.Response:
    return respond(error.body(), status=error.code)


class Target:
    """What a request addresses: a resource type, a namespace, maybe a name and a subresource."""

    def __init__(self, resource: Resource, namespace: str | None, name: str | None, subresource: str) -> None:
        self.resource, self.namespace, self.name, self.subresource = resource, namespace, name, subresource


def resolve(group: str, version: str, parts: list[str]) -> Target:
    def resource_for(plural: str) -> Resource:
        resource = find(group, version, plural)
        if resource is None:
            raise NOT_SERVED
        return resource

    if len(parts) >= 3 and parts[0] == "namespaces" and find(group, version, parts[2]):
        resource = resource_for(parts[2])
        if not resource.namespaced or len(parts) > 5:
            raise NOT_SERVED
        return Target(resource, parts[1], parts[3] if len(parts) > 3 else None, parts[4] if len(parts) > 4 else "")
    if not parts or len(parts) > 3:
        raise NOT_SERVED
    resource = resource_for(parts[0])
    return Target(resource, None, parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else "")


def _manager(request: web.Request) -> str:
    """``fieldManager``, or what the server derives from the User-Agent without one."""
    return request.query.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0] or "unknown"


def _include(request: web.Request) -> str:
    return request.query.get("includeObject") or "Metadata"


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true")


class RestHandlers:
    def __init__(self, cluster: Cluster, logs: LogSource | None, bookmark_interval: float, tokens: Any = None) -> None:
        self.cluster = cluster
        self.tokens = tokens  # the server's Credentials: they issue TokenRequest tokens
        self.store = cluster.store
        self.log_source = logs
        self.bookmark_interval = bookmark_interval

    async def core(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.match_info["tail"].split("/") if p]
        return await self._dispatch(request, "", parts[0], parts[1:])

    async def grouped(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.match_info["tail"].split("/") if p]
        return await self._dispatch(request, parts[0], parts[1], parts[2:])

    async def _dispatch(self, request: web.Request, group: str, version: str, parts: list[str]) -> web.StreamResponse:
        response = await self._serve(request, group, version, parts)
        return _negotiated(request, response)

    async def _serve(self, request: web.Request, group: str, version: str, parts: list[str]) -> web.StreamResponse:
        try:
            target = resolve(group, version, parts)
            if target.name is None:
                return await self._collection(request, target)
            if target.subresource == "log" and target.resource.kind == "Pod":
                return await self._log(request, target)
            if target.subresource == "token" and target.resource.kind == "ServiceAccount":
                return await self._token(request, target)
            if target.resource.review:
                raise NOT_SERVED
            if target.subresource and target.subresource not in target.resource.subresources:
                raise NOT_SERVED
            return await self._object(request, target)
        except ApiError as error:
            return error_response(error)

    # collections -----------------------------------------------------------------------
    async def _collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        resource = target.resource
        if resource.review:
            if request.method != "POST":
                raise method_not_allowed()
            return respond(review(resource, await self._json(request), request.query.get("fieldValidation", "Warn"),
                                  request.get(USER, "")), 201)
        if request.method == "GET":
            if _flag(request, "watch"):
                return await self._watch(request, target)
            return self._list(request, target)
        if request.method == "POST":
            if not resource.namespaced and target.namespace:
                raise method_not_allowed()
            body = await self._json(request)
            if isinstance(body, dict) and isinstance(body.get("metadata", {}), dict):
                applying.record_update(None, body, _manager(request), resource.api_version)
            obj, warnings = self.cluster.create(resource, target.namespace, body,
                                                request.query.get("fieldValidation", "Warn"), self._dry_run(request))
            return respond(obj, 201, warnings)
        if request.method == "DELETE":
            deleted = []
            for obj in self.store.list(resource.storage_key, target.namespace, self._matcher(request, resource)):
                meta = obj["metadata"]
                body, _ = self.cluster.delete(resource, meta.get("namespace", ""), meta["name"], await self._delete_options(request))
                deleted.append(body if body.get("kind") == resource.kind else obj)
            return respond(self._list_body(resource, deleted))
        raise method_not_allowed()

    def _matcher(self, request: web.Request, resource: Resource) -> Callable[[dict[str, Any]], bool]:
        labels = label_selector(request.query.get("labelSelector"))
        fields = field_selector(request.query.get("fieldSelector"), resource.fields)
        return lambda obj: labels(obj) and fields(obj)

    def _list_body(self, resource: Resource, items: list[dict[str, Any]], cont: str = "") -> dict[str, Any]:
        for item in items:
            # a real server's list items carry no kind/apiVersion of their own
            item.pop("kind", None)
            item.pop("apiVersion", None)
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.revision)}
        if cont:
            metadata["continue"] = cont
        return {"kind": f"{resource.kind}List", "apiVersion": resource.api_version, "metadata": metadata, "items": items}

    def _list(self, request: web.Request, target: Target) -> web.Response:
        items = self.store.list(target.resource.storage_key, target.namespace, self._matcher(request, target.resource))
        offset = 0
        if request.query.get("continue"):
            try:
                offset = int(base64.urlsafe_b64decode(request.query["continue"]).decode())
            except ValueError:
                raise bad_request("continue key is not valid: illegal base64 data") from None
        limit = int(request.query.get("limit") or 0)
        cont = ""
        items = items[offset:]
        if limit and len(items) > limit:
            items = items[:limit]
            cont = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
        if wants_table(request.headers.get("Accept", "")):
            return respond(table(target.resource, items, str(self.store.revision), _include(request)))
        return respond(self._list_body(target.resource, items, cont))

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        resource = target.resource
        since_text = request.query.get("resourceVersion", "")
        # "" and "0" mean "from any state": the current objects as ADDED, then live events
        since = int(since_text) if since_text not in ("", "0") else None
        # a watch-list (client-go's WatchListClient, kubectl wait's informer): the state as ADDED
        # events, then a bookmark that says "initial events end here", then live events
        send_initial = _flag(request, "sendInitialEvents")
        if send_initial:
            since = None  # the state now is not older than any resourceVersion asked for
        matcher = self._matcher(request, resource)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            watch = self.store.watch(resource.storage_key, target.namespace, matcher, since)
        except ApiError as error:
            # an expired resourceVersion is an ERROR event in a 200 stream, as a real server sends it
            await response.write(json.dumps({"type": "ERROR", "object": error.body()}).encode() + b"\n")
            return response
        if send_initial:
            snapshot = str(self.store.revision)
            for _ in range(watch.queue.qsize()):
                kind, obj = watch.queue.get_nowait()
                await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            end = {"kind": resource.kind, "apiVersion": resource.api_version,
                   "metadata": {"resourceVersion": snapshot, "annotations": {"k8s.io/initial-events-end": "true"}}}
            await response.write(json.dumps({"type": "BOOKMARK", "object": end}).encode() + b"\n")
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        bookmarks = _flag(request, "allowWatchBookmarks")
        # kubectl get -w asks for Table rows: one row per event, the columns with the first only
        as_table = wants_table(request.headers.get("Accept", ""))
        headers = True
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    kind, obj = await asyncio.wait_for(watch.queue.get(), min(left, self.bookmark_interval))
                except asyncio.TimeoutError:
                    if bookmarks:
                        bookmark = {"kind": resource.kind, "apiVersion": resource.api_version,
                                    "metadata": {"resourceVersion": str(self.store.revision)}}
                        await response.write(json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n")
                    continue
                if as_table:
                    obj = table(resource, [obj], obj["metadata"].get("resourceVersion"), _include(request), headers)
                    headers = False
                await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(watch)
        return response

    # single objects --------------------------------------------------------------------
    async def _object(self, request: web.Request, target: Target) -> web.Response:
        resource, namespace, name = target.resource, target.namespace or "", target.name or ""
        field_validation = request.query.get("fieldValidation", "Warn")
        if request.method == "GET":
            obj = self.cluster.require(resource, namespace, name)
            if wants_table(request.headers.get("Accept", "")):
                return respond(table(resource, [obj], None, _include(request)))
            return respond(obj)
        if request.method == "PUT":
            body = await self._json(request)
            if not target.subresource and isinstance(body, dict) and isinstance(body.get("metadata", {}), dict):
                applying.record_update(self.cluster.require(resource, namespace, name), body, _manager(request), resource.api_version)
            obj, warnings = self.cluster.update(resource, namespace, name, body, target.subresource,
                                                field_validation, self._dry_run(request))
            return respond(obj, 200, warnings)
        if request.method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type == "application/apply-patch+yaml":
                return await self._apply(request, target)
            patcher = patches.PATCHERS.get(content_type)
            if patcher is None:
                raise unsupported_media_type(content_type)
            current = self.cluster.require(resource, namespace, name)
            patched = patcher(current, await self._json(request))
            if not target.subresource and isinstance(patched, dict):
                applying.record_update(current, patched, _manager(request), resource.api_version)
            obj, warnings = self.cluster.patch(resource, namespace, name, patched, target.subresource,
                                               field_validation, self._dry_run(request))
            return respond(obj, 200, warnings)
        if request.method == "DELETE":
            options = await self._delete_options(request)
            body, warnings = self.cluster.delete(resource, namespace, name, options)
            return respond(body, 200, warnings)
        raise method_not_allowed()

    async def _apply(self, request: web.Request, target: Target) -> web.Response:
        """Server-side apply: create or merge, with field managers and their conflicts."""
        resource, namespace, name = target.resource, target.namespace or "", target.name or ""
        manager = request.query.get("fieldManager", "")
        if not manager:
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                           {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                               {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]})
        if target.subresource:
            raise bad_request("server-side apply of a subresource is not served here")
        applied = await self._json(request)
        if not isinstance(applied, dict) or not applied.get("apiVersion") or not applied.get("kind"):
            raise bad_request("invalid object type: /, Kind=" if not isinstance(applied, dict) else
                              f"invalid object type: {applied.get('apiVersion', '')}, Kind={applied.get('kind', '')}")
        meta = applied.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        meta["name"] = name
        field_validation = request.query.get("fieldValidation", "Strict")
        current = self.store.get(resource.storage_key, namespace if resource.namespaced else "", name)
        merged = applying.apply(current, applied, manager, _flag(request, "force"), resource.api_version)
        if current is None:
            obj, warnings = self.cluster.create(resource, target.namespace, merged, field_validation, self._dry_run(request))
            return respond(obj, 201, warnings)
        obj, warnings = self.cluster.patch(resource, namespace, name, merged, "", field_validation, self._dry_run(request))
        return respond(obj, 200, warnings)

    async def _token(self, request: web.Request, target: Target) -> web.Response:
        """``serviceaccounts/NAME/token`` (TokenRequest, ``kubectl create token``): a bearer token
        for the service account, which the server accepts until it stops (``expirationTimestamp``
        says what was asked; it is not enforced here)."""
        if request.method != "POST":
            raise method_not_allowed()
        account = self.cluster.require(target.resource, target.namespace or "", target.name or "")
        body = await self._json(request)
        spec = (body or {}).get("spec") or {}
        seconds = int(spec.get("expirationSeconds") or 3600)
        if seconds < 600:
            raise ApiError(422, "Invalid", f'TokenRequest.authentication.k8s.io "{target.name}" is invalid: spec.expirationSeconds: '
                           "Invalid value: {seconds}: may not specify a duration less than 10 minutes".replace("{seconds}", str(seconds)))
        if self.tokens is None:
            raise NOT_SERVED
        from .operations import now

        meta = account["metadata"]
        token = self.tokens.issue(meta["namespace"], meta["name"])
        answer = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                  "metadata": {"name": meta["name"], "namespace": meta["namespace"], "creationTimestamp": None},
                  "spec": {"audiences": spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local"],
                           "expirationSeconds": seconds, "boundObjectRef": spec.get("boundObjectRef")},
                  "status": {"token": token, "expirationTimestamp": now(seconds)}}
        return respond(answer, 201)

    async def _log(self, request: web.Request, target: Target) -> web.StreamResponse:
        pod = self.cluster.require(target.resource, target.namespace or "", target.name or "")
        containers = [c["name"] for c in pod["spec"].get("containers") or []]
        container = request.query.get("container") or (containers[0] if len(containers) == 1 else "")
        if not container:
            raise bad_request(f"a container name must be specified for pod {target.name}, choose one of: [{' '.join(containers)}]")
        if container not in containers:
            raise bad_request(f"container {container} is not valid for pod {target.name}")
        started = any(s.get("name") == container and ("running" in s.get("state", {}) or "terminated" in s.get("state", {}))
                      for s in pod.get("status", {}).get("containerStatuses") or [])
        if self.log_source is None or not started:
            raise bad_request(f'container "{container}" in pod "{target.name}" is waiting to start: ContainerCreating')
        tail = request.query.get("tailLines")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for chunk in self.log_source.logs(pod, container, _flag(request, "follow"), int(tail) if tail else None,
                                                _flag(request, "timestamps")):
            await response.write(chunk)
        return response

    # request bodies --------------------------------------------------------------------
    @staticmethod
    async def _json(request: web.Request) -> Any:
        """The request's object in its JSON form, whichever of the server's media types it came in."""
        content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        raw = await request.read()
        if request.method != "PATCH":
            if content_type == protobuf.MEDIA_TYPE:
                try:
                    return protobuf.decode(raw)
                except ApiError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a malformed message, whatever the parser says
                    raise bad_request(f"unable to decode the protobuf body: {exc}") from None
            if content_type in ("application/yaml", "application/apply-patch+yaml"):
                return _yaml(raw)
            if content_type not in ("application/json", "*/*", ""):
                # CBOR is not spoken here: client-go answers a 415 to a CBOR request by sending JSON
                raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - accepted media types include: '
                               'application/json, application/yaml, application/vnd.kubernetes.protobuf')
        elif content_type == "application/apply-patch+yaml":
            return _yaml(raw)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        if any(v != "All" for v in values):
            raise bad_request(f'dryRun: Unsupported value: "{values[0]}": supported values: "All"')
        return bool(values)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.can_read_body:
            body = await request.read()
            if body.strip():
                options = json.loads(body)
        for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if key in request.query:
                value: Any = request.query[key]
                options[key] = int(value) if key == "gracePeriodSeconds" else (value.lower() == "true" if key == "orphanDependents" else value)
        if request.query.getall("dryRun", []):
            options["dryRun"] = self._dry_run(request)
        return options



def _yaml(raw: bytes) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise bad_request(f"error converting YAML to JSON: {' '.join(str(exc).split())}") from None


def _negotiated(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """The answer in protobuf when the client asks for it first (client-go's typed clients send
    ``Accept: application/vnd.kubernetes.protobuf,application/json``), as a real server answers;
    JSON for kinds no message describes, and for everything streamed."""
    preferred = request.headers.get("Accept", "").split(",")[0].split(";")[0].strip()
    if preferred != protobuf.MEDIA_TYPE or not isinstance(response, web.Response) or response.content_type != "application/json":
        return response
    try:
        encoded = protobuf.encode(json.loads(response.body))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - an object the messages cannot carry is answered as JSON, which the client accepts too
        encoded = None
    if encoded is None:
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")}
    return web.Response(body=encoded, status=response.status, headers=headers, content_type=protobuf.MEDIA_TYPE)


def review(resource: Resource, body: Any, field_validation: str, user: str = "") -> dict[str, Any]:
    """A SelfSubject*Review answered by the server's authorizer, which allows every authenticated
    request (a kube-apiserver with ``--authorization-mode=AlwaysAllow``): the kubeconfig's admin
    and the pods' service-account tokens may do anything, and say so when asked. A
    SelfSubjectReview (``kubectl auth whoami``) names the user and the groups of the token."""
    from . import validation

    if not isinstance(body, dict) or body.get("kind", resource.kind) != resource.kind:
        raise bad_request(f"the object provided is unrecognized (must be of type {resource.kind})")
    obj = {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": body.get("metadata") or {}, "spec": body.get("spec") or {}}
    validation.check_schema(resource, obj, field_validation)
    if resource.kind == "SelfSubjectReview":
        obj.pop("spec", None)
        if user.startswith("system:serviceaccount:"):
            namespace = user.split(":")[2]
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
        else:
            groups = ["system:masters", "system:authenticated"]
        obj["status"] = {"userInfo": {"username": user, "groups": groups}}
        return obj
    if resource.kind == "SelfSubjectAccessReview":
        obj["status"] = {"allowed": True}
    else:
        obj["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                         "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
    return obj
