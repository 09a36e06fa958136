"""The OpenAPI v3 documents kubectl reads to decide on server-side field validation.

kubectl (``--validate=strict``, the default) checks each group-version's OpenAPI v3 document for
a PATCH operation tagged with the object's ``x-kubernetes-group-version-kind`` that accepts the
``fieldValidation`` query parameter; finding one, it leaves validation to the server (which the
sandbox does: schema validation for custom resources, ``fieldValidation=Strict`` for unknown
fields). The documents carry paths and operations only; component schemas are omitted, so
kubectl falls back to its compiled-in types for strategic-merge computations, as it does when a
server publishes no schema for a type.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from elastrain_sandbox.apiserver.resources import ResourceType

_PARAMS = [
    {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for n in ("dryRun", "fieldManager", "fieldValidation", "pretty", "force")
]


def _gv_path(rt: ResourceType, version: str) -> str:
    return f"apis/{rt.group}/{version}" if rt.group else f"api/{version}"


def group_versions(types: list[ResourceType]) -> dict[str, list[tuple[ResourceType, str]]]:
    out: dict[str, list[tuple[ResourceType, str]]] = {}
    for rt in types:
        for v in rt.versions:
            out.setdefault(_gv_path(rt, v), []).append((rt, v))
    return out


def gv_document(members: list[tuple[ResourceType, str]]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt, version in members:
        if version in rt.schemas:
            schemas[_schema_name(rt, version)] = _published(rt, version)
        gvk = {"group": rt.group, "version": version, "kind": rt.kind}
        base = "/" + _gv_path(rt, version)
        item = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
            if rt.namespaced
            else f"{base}/{rt.plural}/{{name}}"
        )
        ops = {
            verb: {
                "operationId": f"{verb}{rt.kind}",
                "parameters": _PARAMS,
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK"}},
            }
            for verb, action in (
                ("get", "get"),
                ("put", "put"),
                ("patch", "patch"),
                ("delete", "delete"),
            )
        }
        paths[item] = ops
        collection = item.rsplit("/", 1)[0]
        paths[collection] = {
            "post": {
                "operationId": f"create{rt.kind}",
                "parameters": _PARAMS,
                "x-kubernetes-action": "post",
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"201": {"description": "Created"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _schema_name(rt: ResourceType, version: str) -> str:
    """``example.test`` + ``v1`` + ``Widget`` -> ``test.example.v1.Widget`` (as the apiserver)."""
    return ".".join([*reversed(rt.group.split(".")), version, rt.kind])


def _published(rt: ResourceType, version: str) -> dict[str, Any]:
    """A CRD version's schema as the apiserver publishes it: with the GVK extension and the
    standard apiVersion/kind/metadata fields described."""
    schema = copy.deepcopy(rt.schemas[version])
    props = schema.setdefault("properties", {})
    props.setdefault(
        "apiVersion",
        {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation "
            "of an object.",
        },
    )
    props.setdefault(
        "kind",
        {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this "
            "object represents.",
        },
    )
    props["metadata"] = {"type": "object", "description": "Standard object's metadata."}
    schema["x-kubernetes-group-version-kind"] = [
        {"group": rt.group, "version": version, "kind": rt.kind}
    ]
    return schema


def root(types: list[ResourceType]) -> dict[str, Any]:
    paths = {}
    for gv, members in group_versions(types).items():
        digest = (
            hashlib.sha256(json.dumps(gv_document(members), sort_keys=True).encode())
            .hexdigest()[:32]
            .upper()
        )
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}
