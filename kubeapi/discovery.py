"""Discovery and OpenAPI: what kubectl and client-go read before they touch a resource.

- ``/version``; ``/api`` and ``/apis`` in both forms: the aggregated discovery documents
  (``apidiscovery.k8s.io/v2 APIGroupDiscoveryList``) that kubectl 1.37 asks for first, and the
  legacy ``APIVersions``/``APIGroupList`` plus per-group-version ``APIResourceList``;
- ``/openapi/v3`` and one OpenAPI 3 document per group-version, built from the
  ``kubernetes-validate`` schemas. kubectl reads it to learn that the server validates fields
  itself (``fieldValidation`` on the PATCH operation of the kind), so ``kubectl create -f`` sends
  ``fieldValidation=Strict`` instead of validating on the client against ``/openapi/v2``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Any

from aiohttp import web

from .handlers import NOT_SERVED, respond
from .resources import GROUPS, RESOURCES, Resource
from .validation import SCHEMA_VERSION, definitions

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
VERSION = {
    "major": "1", "minor": SCHEMA_VERSION.split(".")[1], "emulationMajor": "1", "emulationMinor": SCHEMA_VERSION.split(".")[1],
    "gitVersion": f"v{SCHEMA_VERSION}", "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64",
}
SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "log": ["get"], "token": ["create"]}


def _in(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if (r.group, r.version) == (group, version)]


def _storage_hash(resource: Resource) -> str:
    return hashlib.sha256(resource.storage_key.encode()).hexdigest()[:11]


def resource_list(group: str, version: str) -> dict[str, Any]:
    resources = []
    for r in _in(group, version):
        entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                                 "verbs": list(r.verbs)}
        if not r.review:
            entry["storageVersionHash"] = _storage_hash(r)
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        resources.append(entry)
        for sub in r.subresources:
            resources.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced, "kind": r.kind,
                              "verbs": SUBRESOURCE_VERBS[sub]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


def _aggregated_group(group: str) -> dict[str, Any]:
    versions = []
    for version in GROUPS[group]:
        resources = []
        for r in _in(group, version):
            kind = {"group": r.group, "version": r.version, "kind": r.kind}
            entry: dict[str, Any] = {"resource": r.plural, "responseKind": kind, "scope": "Namespaced" if r.namespaced else "Cluster",
                                     "singularResource": r.singular, "verbs": list(r.verbs)}
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            if r.subresources:
                entry["subresources"] = [{"subresource": sub, "responseKind": kind, "verbs": SUBRESOURCE_VERBS[sub]} for sub in r.subresources]
            resources.append(entry)
        versions.append({"version": version, "resources": resources, "freshness": "Current"})
    return {"metadata": {"name": group, "creationTimestamp": None} if group else {"creationTimestamp": None}, "versions": versions}


def _aggregated(groups: list[str]) -> web.Response:
    body = {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": [_aggregated_group(g) for g in groups]}
    return web.Response(body=json.dumps(body).encode(), headers={"Content-Type": AGGREGATED, "Vary": "Accept"})


def _wants_aggregated(request: web.Request) -> bool:
    # client-go lists the v2 form first and plain JSON last; answering v2 is what a 1.37 server does
    return "as=APIGroupDiscoveryList" in request.headers.get("Accept", "") and "v=v2;" in request.headers.get("Accept", "") + ";"


async def version(request: web.Request) -> web.Response:
    return respond(VERSION)


async def api(request: web.Request) -> web.Response:
    if _wants_aggregated(request):
        return _aggregated([""])
    return respond({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})


async def apis(request: web.Request) -> web.Response:
    groups = [g for g in GROUPS if g]
    if _wants_aggregated(request):
        return _aggregated(groups)
    return respond({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in GROUPS[g]],
         "preferredVersion": {"groupVersion": f"{g}/{GROUPS[g][0]}", "version": GROUPS[g][0]}} for g in groups]})


async def core_resources(request: web.Request) -> web.Response:
    return respond(resource_list("", "v1"))


async def group_resources(request: web.Request) -> web.Response:
    group, version_name = request.match_info["group"], request.match_info["version"]
    if version_name not in GROUPS.get(group, []):
        return respond(NOT_SERVED.body(), 404)
    return respond(resource_list(group, version_name))


async def group(request: web.Request) -> web.Response:
    name = request.match_info["group"]
    if name not in GROUPS or not name:
        return respond(NOT_SERVED.body(), 404)
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in GROUPS[name]]
    return respond({"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": versions, "preferredVersion": versions[0]})


# OpenAPI v3 ----------------------------------------------------------------------------
def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _to_openapi(schema: Any) -> Any:
    """JSON Schema 2020-12 (as kubernetes-validate stores it) to the OpenAPI 3.0 dialect."""
    if isinstance(schema, list):
        return [_to_openapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key == "$ref":
            result[key] = "#/components/schemas/" + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            result[key] = next(t for t in value if t != "null")
        elif key == "additionalProperties" and value is False:
            continue
        else:
            result[key] = _to_openapi(value)
    return result


def _definition_name(resource: Resource) -> str:
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if (gvk["group"], gvk["version"], gvk["kind"]) == (resource.group, resource.version, resource.kind):
                return name
    raise KeyError(resource.kind)


def _closure(names: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found[name] = _to_openapi(definitions()[name])
        pending += re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(found[name]))
    return found


def _operation(resource: Resource, action: str, schema_ref: str, writes: bool) -> dict[str, Any]:
    parameters = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}] if writes else []
    return {"operationId": f"{action}{resource.kind}", "parameters": parameters,
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": resource.kind}}


@functools.cache
def openapi_document(group: str, version: str) -> str:
    paths: dict[str, Any] = {}
    names = []
    for r in _in(group, version):
        name = _definition_name(r)
        names.append(name)
        ref = f"#/components/schemas/{name}"
        base = "/" + _gv_path(group, version) + ("/namespaces/{namespace}" if r.namespaced else "")
        if r.review:
            paths[f"{base}/{r.plural}"] = {"post": _operation(r, "post", ref, True)}
            continue
        paths[f"{base}/{r.plural}"] = {"get": _operation(r, "list", ref, False), "post": _operation(r, "post", ref, True)}
        paths[f"{base}/{r.plural}/{{name}}"] = {"get": _operation(r, "get", ref, False), "put": _operation(r, "put", ref, True),
                                                 "patch": _operation(r, "patch", ref, True), "delete": _operation(r, "delete", ref, False)}
    document = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": f"v{SCHEMA_VERSION}"}, "paths": paths,
                "components": {"schemas": _closure(names)}}
    return json.dumps(document)


def _hash(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()[:128].upper()


async def openapi_v3_root(request: web.Request) -> web.Response:
    paths = {}
    for group_name, versions in GROUPS.items():
        for v in versions:
            path = _gv_path(group_name, v)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(openapi_document(group_name, v))}"}
    return respond({"paths": paths})


async def openapi_v3(request: web.Request) -> web.Response:
    parts = request.match_info["tail"].strip("/").split("/")
    group_name, v = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2]) if len(parts) == 3 else ("?", "?")
    if v not in GROUPS.get(group_name, []):
        return respond(NOT_SERVED.body(), 404)
    return web.Response(text=openapi_document(group_name, v), content_type="application/json")


async def health(request: web.Request) -> web.Response:
    """/healthz, /livez, /readyz: "ok", as a healthy server answers them."""
    return web.Response(text="ok", content_type="text/plain")


def add_routes(app: web.Application) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, health)
    app.router.add_get("/version", version)
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/api/v1", core_resources)
    app.router.add_get("/apis/{group}", group)
    app.router.add_get("/apis/{group}/{version}", group_resources)
    app.router.add_get("/openapi/v3", openapi_v3_root)
    app.router.add_get("/openapi/v3/{tail:.+}", openapi_v3)
