"""Small builders shared by the schema tests: wrap a schema in a CRD, list causes as text."""

from __future__ import annotations

from typing import Any

from elastrain_sandbox.validation import CompiledSchema, FieldCause


def crd(schema: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    """A minimal CRD around one version's openAPIV3Schema."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def spec_schema(properties: dict[str, Any], **extra: Any) -> CompiledSchema:
    """Compile a root schema whose ``spec`` has ``properties`` (plus ``extra`` keys on spec)."""
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": properties, **extra}},
    }
    return CompiledSchema.from_crd(crd(schema), "v1")


def obj(spec: Any, name: str = "w") -> dict[str, Any]:
    """A custom resource with this spec."""
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }


def lines(causes: list[FieldCause]) -> list[str]:
    """Causes as ``field: message`` lines, the form kubectl prints."""
    return [str(c) for c in causes]
