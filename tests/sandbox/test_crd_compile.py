"""CRD schemas compile once, and their unknown schema keywords are reported like the API
server does (``Warning`` headers, or a 400 under ``fieldValidation=Strict``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from elastrain_sandbox.embedded import Sandbox
from elastrain_sandbox.validation import CompiledSchema

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _crd(group: str, spec_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gizmos.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "kind": "Gizmo"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec_schema, "status": {"type": "object"}},
                        }
                    },
                }
            ],
        },
    }


def _unique_group() -> str:
    # The compile cache is process-wide: a fresh group (and so schema key) per test.
    return f"g{uuid.uuid4().hex[:10]}.example.test"


def test_each_crd_version_compiles_once(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = CompiledSchema.from_crd.__func__  # type: ignore[attr-defined]

    def counting(cls: type[CompiledSchema], crd: dict[str, Any], version: str) -> CompiledSchema:
        calls.append(version)
        result: CompiledSchema = original(cls, crd, version)
        return result

    monkeypatch.setattr(CompiledSchema, "from_crd", classmethod(counting))
    group = _unique_group()
    spec = {"type": "object", "properties": {"size": {"type": "integer"}}}
    crd = sandbox.store.create("customresourcedefinitions", _crd(group, spec))
    sandbox.store.patch(  # any CRD write re-registers the resource: no new compile
        "customresourcedefinitions",
        crd["metadata"]["name"],
        {"metadata": {"labels": {"touched": "yes"}}},
    )
    obj = {"apiVersion": f"{group}/v1", "kind": "Gizmo", "metadata": {"name": "a"}}
    obj["spec"] = {"size": 3}
    sandbox.store.create((group, "gizmos"), obj, "default")
    assert calls == ["v1"]


def _post(sb: Sandbox, body: dict[str, Any], query: str) -> tuple[int, list[str], Any]:
    req = urllib.request.Request(
        sb.url + CRDS + query,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get_all("Warning") or [], json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get_all("Warning") or [], json.loads(err.read())


TYPO = {"type": "object", "properties": {"size": {"type": "integer", "minimun": 1}}}
TYPO_PATH = "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].minimun"


def test_unknown_schema_keywords_warn(sandbox: Sandbox) -> None:
    code, warnings, _ = _post(sandbox, _crd(_unique_group(), TYPO), "?fieldValidation=Warn")
    assert code == 201
    assert warnings == [f'299 - "unknown field \\"{TYPO_PATH}\\""']


def test_unknown_schema_keywords_fail_under_strict(sandbox: Sandbox) -> None:
    group = _unique_group()
    code, _, status = _post(sandbox, _crd(group, TYPO), "?fieldValidation=Strict")
    assert code == 400
    assert status["message"] == f'strict decoding error: unknown field "{TYPO_PATH}"'
    clean = {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}}
    code, warnings, _ = _post(sandbox, _crd(group, clean), "?fieldValidation=Strict")
    assert code == 201 and warnings == []
