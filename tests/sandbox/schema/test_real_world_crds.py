"""Typical real-world CRD schemas compile, and the Kubernetes docs' CEL examples behave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from elastrain_sandbox.validation import CompiledSchema
from schema_helpers import crd, lines

REPO = Path(__file__).resolve().parents[3]

# Shapes lifted from widely deployed CRDs: a Kubeflow-style job with a preserved pod template,
# resources as int-or-string, a list-type map of containers, a cert-manager-style spec with
# formats, and status conditions with list-type map keyed by type.
KUBEFLOW_LIKE = """
type: object
properties:
  spec:
    type: object
    required: [replicaSpecs]
    properties:
      runPolicy:
        type: object
        properties:
          cleanPodPolicy: {type: string, enum: [All, Running, None], default: None}
          backoffLimit: {type: integer, format: int32, minimum: 0}
          activeDeadlineSeconds: {type: integer, format: int64}
      replicaSpecs:
        type: object
        additionalProperties:
          type: object
          properties:
            replicas: {type: integer, format: int32, default: 1}
            restartPolicy: {type: string, enum: [Always, OnFailure, Never, ExitCode]}
            resources:
              type: object
              additionalProperties:
                x-kubernetes-int-or-string: true
                anyOf: [{type: integer}, {type: string}]
                pattern: ^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([KMGTPE]i|[numkMGTPE])?$
            containers:
              type: array
              x-kubernetes-list-type: map
              x-kubernetes-list-map-keys: [name]
              items:
                type: object
                required: [name]
                properties:
                  name: {type: string}
                  image: {type: string}
            template:
              type: object
              x-kubernetes-preserve-unknown-fields: true
  status:
    type: object
    properties:
      conditions:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [type]
        items:
          type: object
          required: [type, status]
          properties:
            type: {type: string}
            status: {type: string, enum: ["True", "False", "Unknown"]}
            lastTransitionTime: {type: string, format: date-time}
"""

CERT_LIKE = """
type: object
properties:
  spec:
    type: object
    required: [secretName]
    x-kubernetes-validations:
    - rule: "!has(self.duration) || !has(self.renewBefore) || self.renewBefore < self.duration"
      message: renewBefore must be shorter than duration
    properties:
      secretName: {type: string, maxLength: 253}
      dnsNames: {type: array, items: {type: string}, x-kubernetes-list-type: set}
      duration: {type: string, format: duration}
      renewBefore: {type: string, format: duration}
      privateKey:
        type: object
        properties:
          algorithm: {type: string, enum: [RSA, ECDSA, Ed25519]}
          size: {type: integer}
        x-kubernetes-validations:
        - rule: >-
            !has(self.size) || !has(self.algorithm) || self.algorithm != 'RSA'
            || self.size >= 2048
          messageExpression: "'RSA keys need at least 2048 bits, got ' + string(self.size)"
          fieldPath: .size
          reason: FieldValueForbidden
"""

INT: dict[str, Any] = {"type": "integer"}
STR: dict[str, Any] = {"type": "string"}


def props(**fields: Any) -> dict[str, Any]:
    return {"type": "object", "properties": fields}


def array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def string_format(fmt: str) -> dict[str, Any]:
    return {"type": "string", "format": fmt}


# The examples of the Kubernetes "Validation rules" documentation: rule, schema, good, bad.
DOC_RULES: list[tuple[str, dict[str, Any], Any, Any]] = [
    (
        "self.minReplicas <= self.replicas && self.replicas <= self.maxReplicas",
        props(minReplicas=INT, replicas=INT, maxReplicas=INT),
        {"minReplicas": 1, "replicas": 2, "maxReplicas": 3},
        {"minReplicas": 3, "replicas": 2, "maxReplicas": 3},
    ),
    (
        "'Available' in self.stateCounts",
        props(stateCounts={"type": "object", "additionalProperties": INT}),
        {"stateCounts": {"Available": 1}},
        {"stateCounts": {}},
    ),
    (
        "(size(self.list1) == 0) != (size(self.list2) == 0)",
        props(list1=array(STR), list2=array(STR)),
        {"list1": ["a"], "list2": []},
        {"list1": [], "list2": []},
    ),
    (
        "!('MY_KEY' in self.map1) || self['MY_KEY'].matches('^[a-zA-Z]*$')",
        {
            **props(map1={"type": "object", "additionalProperties": STR}),
            "x-kubernetes-preserve-unknown-fields": True,
        },
        {"map1": {}, "MY_KEY": "1"},
        {"map1": {"MY_KEY": "x"}, "MY_KEY": "1"},
    ),
    (
        "self.envars.filter(e, e.name == 'MY_ENV').all(e, e.value.matches('^[a-zA-Z]*$'))",
        props(envars=array(props(name=STR, value=STR))),
        {"envars": [{"name": "MY_ENV", "value": "abc"}]},
        {"envars": [{"name": "MY_ENV", "value": "a1"}]},
    ),
    (
        "has(self.expired) && self.created + self.ttl < self.expired",
        props(
            created=string_format("date-time"),
            expired=string_format("date-time"),
            ttl=string_format("duration"),
        ),
        {"created": "2024-01-01T00:00:00Z", "ttl": "1h", "expired": "2024-01-01T02:00:00Z"},
        {"created": "2024-01-01T00:00:00Z", "ttl": "3h", "expired": "2024-01-01T02:00:00Z"},
    ),
    ("self.health.startsWith('ok')", props(health=STR), {"health": "ok!"}, {"health": "bad"}),
    (
        "type(self.value) == string ? self.value == '99%' : self.value == 42",
        props(value={"x-kubernetes-int-or-string": True}),
        {"value": 42},
        {"value": "98%"},
    ),
    (
        "self.set1.all(e, !(e in self.set2))",
        props(set1=array(STR), set2=array(STR)),
        {"set1": ["a"], "set2": ["b"]},
        {"set1": ["a"], "set2": ["a"]},
    ),
    (
        "self.nums.isSorted() && self.nums.sum() < 10 && self.nums.min() == 1",
        props(nums=array(INT)),
        {"nums": [1, 2, 3]},
        {"nums": [3, 2, 1]},
    ),
]


def compile_yaml(text: str) -> CompiledSchema:
    return CompiledSchema.from_crd(crd(yaml.safe_load(text)), "v1")


def wrap(spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


def test_kubeflow_like_schema_compiles_and_validates() -> None:
    cs = compile_yaml(KUBEFLOW_LIKE)
    job = wrap(
        {
            "replicaSpecs": {
                "Worker": {
                    "resources": {"cpu": "500m", "nvidia.com/gpu": 1},
                    "containers": [{"name": "pytorch", "image": "x"}],
                    "template": {"spec": {"containers": [{"name": "pytorch"}]}},
                }
            }
        }
    )
    assert cs.validate(cs.prepare(job)) == []
    job["spec"]["replicaSpecs"]["Worker"]["resources"]["cpu"] = "lots"
    assert [c.field for c in cs.validate(cs.prepare(job))] == [
        "spec.replicaSpecs.Worker.resources.cpu"
    ]


def test_cert_manager_like_rules() -> None:
    cs = compile_yaml(CERT_LIKE)
    assert cs.validate(wrap({"secretName": "s", "duration": "2h", "renewBefore": "1h"})) == []
    bad = wrap(
        {
            "secretName": "s",
            "duration": "1h",
            "renewBefore": "2h",
            "privateKey": {"algorithm": "RSA", "size": 1024},
        }
    )
    assert lines(cs.validate(bad)) == [
        "spec: Invalid value: renewBefore must be shorter than duration",
        "spec.privateKey.size: Forbidden: RSA keys need at least 2048 bits, got 1024",
    ]


@pytest.mark.parametrize(
    ("rule", "schema", "good", "bad"), DOC_RULES, ids=[r[0][:40] for r in DOC_RULES]
)
def test_documented_rule_examples(rule: str, schema: dict[str, Any], good: Any, bad: Any) -> None:
    spec = {**schema, "x-kubernetes-validations": [{"rule": rule}]}
    cs = CompiledSchema.from_crd(crd({"type": "object", "properties": {"spec": spec}}), "v1")
    assert cs.validate(wrap(good)) == []
    assert lines(cs.validate(wrap(bad))) == [f"spec: Invalid value: failed rule: {rule}"]


@pytest.mark.parametrize("path", sorted(REPO.glob("crds/*.yaml")), ids=lambda p: p.name)
def test_repository_crds_compile(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    for version in doc["spec"]["versions"]:
        compiled = CompiledSchema.from_crd(doc, version["name"])
        # A real cluster would refuse typo'd keys under strict validation, costly rules always.
        assert compiled.unknown_fields == []
        assert compiled.cost_warnings == []
