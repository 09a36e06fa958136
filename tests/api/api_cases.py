"""Shared TrainingJob fixtures for the API tests: one valid base job and a table of bad specs.

Each bad case names the field its error must mention. The same table runs through the CRD
(schema + CEL, in-process) and through ``parse_training_job``, so the two can never disagree
about what is invalid.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
# The user-facing examples, and every manifest under examples/ (the demo's included).
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
ALL_EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))

Obj = dict[str, Any]


def container(name: str = "trainer") -> Obj:
    return {"name": name, "image": "ghcr.io/elastrain/trainer:0.1.0"}


def template(*containers: Obj) -> Obj:
    return {"spec": {"containers": list(containers) or [container()]}}


def base_job(name: str = "mnist") -> Obj:
    """A minimal valid job: two DDP workers."""
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicaSpecs": {"worker": {"replicas": 2, "template": template()}}},
    }


def example_jobs() -> list[tuple[str, Obj]]:
    """Every TrainingJob document under ``examples/``, with an id for parametrize."""
    out = []
    for path in ALL_EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "TrainingJob":
                rel = path.relative_to(REPO / "examples")
                out.append((f"{rel}:{doc['metadata']['name']}", doc))
    return out


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    """A mutation that sets (or, with value DELETE, removes) a dotted path, creating parents."""

    def apply(obj: Obj) -> None:
        set_path(obj, path, None if value is DELETE else value)

    return apply


DELETE = object()
W = "spec.replicaSpecs.worker"
ELASTIC = {"minReplicas": 1, "maxReplicas": 4}


@dataclass(frozen=True)
class Bad:
    """One invalid spec: the mutations that make it, and the field its error must name.

    ``schema`` is False for what the CRD cannot state because the API server prunes unknown
    fields before validating (kubectl's strict field validation reports those instead).
    ``crd`` is False for what only the operator checks (documented in docs/api.md): the CRD
    must still accept it, so that adding the rule to the CRD means updating the case.
    """

    id: str
    mutations: tuple[Callable[[Obj], None], ...]
    field: str
    schema: bool = True
    crd: bool = True

    def build(self) -> Obj:
        obj = base_job()
        for mutate in self.mutations:
            mutate(obj)
        return obj


def bad(
    id: str,
    field: str,
    *mutations: Callable[[Obj], None],
    schema: bool = True,
    crd: bool = True,
) -> Bad:
    return Bad(id, mutations, field, schema, crd)


LABELS = f"{W}.template.metadata.labels"
ANNOTATIONS = f"{W}.template.metadata.annotations"
C0 = f"{W}.template.spec.containers[0]"


def _labels(labels: dict[str, str]) -> Callable[[Obj], None]:
    return _set(f"{W}.template.metadata", {"labels": labels})


def _annotations(annotations: dict[str, str]) -> Callable[[Obj], None]:
    return _set(f"{W}.template.metadata", {"annotations": annotations})


def _container_with(**fields: Any) -> Callable[[Obj], None]:
    return _set(f"{W}.template.spec.containers", [{**container(), **fields}])


BAD: list[Bad] = [
    bad("no-spec", "spec", _set("spec", DELETE)),
    bad("no-replicaSpecs", "spec.replicaSpecs", _set("spec.replicaSpecs", DELETE)),
    bad(
        "no-worker",
        "spec.replicaSpecs.worker",
        _set("spec.replicaSpecs", {"ps": {"template": template()}}),
    ),
    bad("negative-replicas", f"{W}.replicas", _set(f"{W}.replicas", -1)),
    bad("string-replicas", f"{W}.replicas", _set(f"{W}.replicas", "two")),
    bad("too-many-replicas", f"{W}.replicas", _set(f"{W}.replicas", 10000)),
    bad("bad-restart-policy", f"{W}.restartPolicy", _set(f"{W}.restartPolicy", "Sometimes")),
    bad("no-template", f"{W}.template", _set(f"{W}.template", DELETE)),
    bad("no-pod-spec", f"{W}.template.spec", _set(f"{W}.template.spec", DELETE)),
    bad(
        "no-containers", f"{W}.template.spec.containers", _set(f"{W}.template.spec.containers", [])
    ),
    bad(
        "container-without-name",
        f"{W}.template.spec.containers[0].name",
        _set(f"{W}.template.spec.containers", [{"image": "x"}]),
    ),
    bad(
        "container-without-image",
        f"{W}.template.spec.containers[0].image",
        _set(f"{W}.template.spec.containers", [{"name": "x"}]),
    ),
    bad(
        "container-bad-name",
        f"{W}.template.spec.containers[0].name",
        _set(f"{W}.template.spec.containers", [container("Bad_Name")]),
    ),
    bad(
        "duplicate-container-names",
        f"{W}.template.spec.containers[1]",
        _set(f"{W}.template.spec.containers", [container("a"), container("a")]),
    ),
    bad(
        "pod-restart-policy",
        f"{W}.template.spec.restartPolicy",
        _set(f"{W}.template.spec.restartPolicy", "Always"),
    ),
    bad(
        "pod-hostname",
        f"{W}.template.spec.hostname",
        _set(f"{W}.template.spec.hostname", "mine"),
    ),
    bad(
        "reserved-label",
        f"{W}.template.metadata.labels",
        _set(f"{W}.template.metadata", {"labels": {"elastrain.dev/job-name": "other"}}),
    ),
    bad("label-key-space", LABELS, _labels({"bad key": "x"})),
    bad("label-key-name-64", LABELS, _labels({"a" * 64: "x"})),
    bad("label-key-prefix-254", LABELS, _labels({"a" * 254 + "/x": "x"})),
    bad("label-key-empty-prefix", LABELS, _labels({"/x": "x"})),
    bad("label-key-upper-prefix", LABELS, _labels({"Example.com/x": "x"})),
    bad("label-key-two-slashes", LABELS, _labels({"a/b/c": "x"})),
    bad("label-value-64", LABELS, _labels({"team": "a" * 64})),
    bad("label-value-space", LABELS, _labels({"team": "a b"})),
    bad("label-value-trailing-dash", LABELS, _labels({"team": "a-"})),
    bad("too-many-labels", LABELS, _labels({f"l{i}": "" for i in range(257)})),
    bad("annotation-key-space", ANNOTATIONS, _annotations({"bad key": "x"}), crd=False),
    bad("annotation-key-name-64", ANNOTATIONS, _annotations({"a" * 64: "x"}), crd=False),
    bad(
        "annotations-over-256KiB",
        ANNOTATIONS,
        _annotations({"a": "x" * 200_000, "b": "y" * 62_144}),
        crd=False,
    ),
    bad("port-zero", f"{C0}.ports[0].containerPort", _container_with(ports=[{"containerPort": 0}])),
    bad(
        "port-65536",
        f"{C0}.ports[1].containerPort",
        _container_with(ports=[{"containerPort": 80}, {"containerPort": 65536}]),
    ),
    bad("port-missing", f"{C0}.ports[0].containerPort", _container_with(ports=[{"name": "http"}])),
    bad(
        "port-name-16",
        f"{C0}.ports[0].name",
        _container_with(ports=[{"containerPort": 80, "name": "a" * 16}]),
    ),
    bad(
        "port-name-digits",
        f"{C0}.ports[0].name",
        _container_with(ports=[{"containerPort": 80, "name": "8080"}]),
    ),
    bad(
        "port-name-double-dash",
        f"{C0}.ports[0].name",
        _container_with(ports=[{"containerPort": 80, "name": "a--b"}]),
    ),
    bad("ports-not-a-list", f"{C0}.ports", _container_with(ports={"containerPort": 80})),
    bad("env-name-digit", f"{C0}.env[0].name", _container_with(env=[{"name": "1X", "value": ""}])),
    bad(
        "env-name-space", f"{C0}.env[1].name", _container_with(env=[{"name": "A"}, {"name": "A B"}])
    ),
    bad("env-name-dotdot", f"{C0}.env[0].name", _container_with(env=[{"name": "..x"}])),
    bad("env-name-missing", f"{C0}.env[0].name", _container_with(env=[{"value": "x"}])),
    bad("negative-gpus", f"{W}.gpus", _set(f"{W}.gpus", -1)),
    bad(
        "two-chiefs",
        "spec.replicaSpecs.chief.replicas",
        _set("spec.replicaSpecs.chief", {"replicas": 2, "template": template()}),
    ),
    bad(
        "two-evaluators",
        "spec.replicaSpecs.evaluator.replicas",
        _set("spec.replicaSpecs.evaluator", {"replicas": 2, "template": template()}),
    ),
    bad(
        "elastic-min-above-max",
        "spec.elasticPolicy.minReplicas",
        _set("spec.elasticPolicy", {"minReplicas": 3, "maxReplicas": 2}),
        _set(f"{W}.replicas", 2),
    ),
    bad(
        "elastic-replicas-above-max",
        f"{W}.replicas",
        _set("spec.elasticPolicy", ELASTIC),
        _set(f"{W}.replicas", 5),
    ),
    bad(
        "elastic-replicas-below-min",
        f"{W}.replicas",
        _set("spec.elasticPolicy", {"minReplicas": 3, "maxReplicas": 4}),
        _set(f"{W}.replicas", 2),
    ),
    bad(
        "elastic-etcd-backend",
        "spec.elasticPolicy.rdzvBackend",
        _set("spec.elasticPolicy", {**ELASTIC, "rdzvBackend": "etcd-v2"}),
    ),
    bad(
        "elastic-port-range",
        "spec.elasticPolicy.rdzvPort",
        _set("spec.elasticPolicy", {**ELASTIC, "rdzvPort": 70000}),
    ),
    bad(
        "elastic-last-call-negative",
        "spec.elasticPolicy.lastCallTimeoutSeconds",
        _set("spec.elasticPolicy", {**ELASTIC, "lastCallTimeoutSeconds": -1}),
    ),
    bad(
        "elastic-pending-timeout-zero",
        "spec.elasticPolicy.pendingTimeoutSeconds",
        _set("spec.elasticPolicy", {**ELASTIC, "pendingTimeoutSeconds": 0}),
    ),
    bad(
        "elastic-pending-timeout-too-long",
        "spec.elasticPolicy.pendingTimeoutSeconds",
        _set("spec.elasticPolicy", {**ELASTIC, "pendingTimeoutSeconds": 604801}),
    ),
    bad(
        "elastic-trim-without-pending-timeout",
        "spec.elasticPolicy.trimPendingWorkers",
        _set("spec.elasticPolicy", {**ELASTIC, "trimPendingWorkers": True}),
    ),
    bad(
        "elastic-no-max",
        "spec.elasticPolicy.maxReplicas",
        _set("spec.elasticPolicy", {"minReplicas": 1}),
    ),
    bad(
        "elastic-negative-restarts",
        "spec.elasticPolicy.maxRestarts",
        _set("spec.elasticPolicy", {**ELASTIC, "maxRestarts": -1}),
    ),
    bad("nproc-zero", "spec.nprocPerNode", _set("spec.nprocPerNode", 0)),
    bad("nproc-word", "spec.nprocPerNode", _set("spec.nprocPerNode", "many")),
    bad("negative-backoff", "spec.runPolicy.backoffLimit", _set("spec.runPolicy.backoffLimit", -1)),
    bad(
        "clean-pod-policy",
        "spec.runPolicy.cleanPodPolicy",
        _set("spec.runPolicy.cleanPodPolicy", "Some"),
    ),
    bad(
        "zero-deadline",
        "spec.runPolicy.activeDeadlineSeconds",
        _set("spec.runPolicy.activeDeadlineSeconds", 0),
    ),
    bad(
        "negative-ttl",
        "spec.runPolicy.ttlSecondsAfterFinished",
        _set("spec.runPolicy.ttlSecondsAfterFinished", -5),
    ),
    bad("suspend-string", "spec.runPolicy.suspend", _set("spec.runPolicy.suspend", "yes")),
    bad(
        "exit-code-zero",
        "spec.runPolicy.retryableExitCodes[0]",
        _set(f"{W}.restartPolicy", "ExitCode"),
        _set("spec.runPolicy.retryableExitCodes", [0]),
    ),
    bad(
        "exit-code-300",
        "spec.runPolicy.retryableExitCodes[0]",
        _set(f"{W}.restartPolicy", "ExitCode"),
        _set("spec.runPolicy.retryableExitCodes", [300]),
    ),
    bad(
        "exit-code-duplicate",
        "spec.runPolicy.retryableExitCodes[1]",
        _set(f"{W}.restartPolicy", "ExitCode"),
        _set("spec.runPolicy.retryableExitCodes", [137, 137]),
    ),
    bad(
        "exit-codes-without-exitcode-role",
        "spec.runPolicy.retryableExitCodes",
        _set("spec.runPolicy.retryableExitCodes", [137]),
    ),
    bad(
        "backoff-initial-above-max",
        "spec.runPolicy.restartBackoff.initialSeconds",
        _set("spec.runPolicy.restartBackoff", {"initialSeconds": 600, "maxSeconds": 60}),
    ),
    bad(
        "min-available-above-total",
        "spec.runPolicy.schedulingPolicy.minAvailable",
        _set("spec.runPolicy.schedulingPolicy", {"minAvailable": 3}),
    ),
    bad(
        "scheduler-name",
        "spec.runPolicy.schedulingPolicy.schedulerName",
        _set("spec.runPolicy.schedulingPolicy", {"schedulerName": "Bad Name"}),
    ),
    bad("success-policy", "spec.successPolicy", _set("spec.successPolicy", "Any")),
    bad("all-workers-zero", f"{W}.replicas", _set(f"{W}.replicas", 0)),
    bad(
        "chief-policy-nobody",
        "spec.successPolicy",
        _set("spec.successPolicy", "Chief"),
        _set(f"{W}.replicas", 0),
    ),
    bad(
        "ps-without-workers",
        f"{W}.replicas",
        _set("spec.successPolicy", "Chief"),
        _set("spec.replicaSpecs.chief", {"template": template()}),
        _set("spec.replicaSpecs.ps", {"template": template()}),
        _set(f"{W}.replicas", 0),
    ),
    bad(
        "elastic-with-ps",
        "spec.elasticPolicy",
        _set("spec.elasticPolicy", ELASTIC),
        _set("spec.replicaSpecs.ps", {"replicas": 1, "template": template()}),
    ),
    bad(
        "elastic-with-defaulted-ps",
        "spec.elasticPolicy",
        _set("spec.elasticPolicy", ELASTIC),
        _set("spec.replicaSpecs.ps", {"template": template()}),  # replicas defaults to 1
    ),
    bad("name-too-long", "metadata.name", _set("metadata.name", "a" * 49)),
    bad("name-not-dns-1035", "metadata.name", _set("metadata.name", "9lives")),
    bad("name-with-dot", "metadata.name", _set("metadata.name", "my.job")),
    bad(
        "unknown-role",
        "spec.replicaSpecs.master",
        _set("spec.replicaSpecs.master", {"template": template()}),
        schema=False,
    ),
    bad("unknown-spec-field", "spec.elasticPolicyy", _set("spec.elasticPolicyy", {}), schema=False),
]


@dataclass(frozen=True)
class Good:
    """One valid spec beyond the base job, next to a rule it must not trip."""

    id: str
    mutations: tuple[Callable[[Obj], None], ...]

    def build(self) -> Obj:
        obj = base_job()
        for mutate in self.mutations:
            mutate(obj)
        return obj


def good(id: str, *mutations: Callable[[Obj], None]) -> Good:
    return Good(id, mutations)


GOOD: list[Good] = [
    good(
        "template-metadata-at-the-limits",
        _set(
            f"{W}.template.metadata",
            {
                "labels": {
                    "app.kubernetes.io/name": "mnist",
                    "team": "",
                    "a": "A_b.c-9",
                    "x" * 63: "v" * 63,
                    "a" * 253 + "/n": "1",
                    **{f"l{i}": "" for i in range(251)},
                },
                "annotations": {
                    "example.com/note": "any text: spaces, / and ✓ are fine",
                    "k": "",
                    "big": "z" * 200_000,
                    "A_b.c-9": "y" * 62_000,
                },
            },
        ),
    ),
    good(
        "container-ports-and-env",
        _container_with(
            ports=[
                {"containerPort": 1, "name": "http"},
                {"containerPort": 65535, "name": "8a-b", "protocol": "UDP"},
                {"containerPort": 8080, "name": "a" * 15},
                {"containerPort": 9000},
            ],
            env=[
                {"name": "FOO", "value": "1"},
                {"name": "_x"},
                {"name": "my.var-1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "-dash"},
                {"name": ".hidden"},
            ],
        ),
    ),
    good("elastic", _set("spec.elasticPolicy", ELASTIC)),
    good(
        "elastic-pending-timeout",
        _set("spec.elasticPolicy", {**ELASTIC, "pendingTimeoutSeconds": 600}),
    ),
    good(
        "elastic-trim-pending",
        _set(
            "spec.elasticPolicy",
            {**ELASTIC, "pendingTimeoutSeconds": 600, "trimPendingWorkers": True},
        ),
    ),
    good("ps", _set("spec.replicaSpecs.ps", {"replicas": 2, "template": template()})),
    good(
        "elastic-with-zero-ps",
        _set("spec.elasticPolicy", ELASTIC),
        _set("spec.replicaSpecs.ps", {"replicas": 0, "template": template()}),
    ),
    good(
        "elastic-with-chief-and-evaluator",
        _set("spec.elasticPolicy", ELASTIC),
        _set("spec.replicaSpecs.chief", {"template": template()}),
        _set("spec.replicaSpecs.evaluator", {"template": template()}),
    ),
]


@dataclass(frozen=True)
class Update:
    """An update from ``base`` (after ``before``) to ``after``; ``field`` None means allowed."""

    id: str
    before: tuple[Callable[[Obj], None], ...]
    after: tuple[Callable[[Obj], None], ...]
    field: str | None

    def build(self) -> tuple[Obj, Obj]:
        old = base_job()
        for mutate in self.before:
            mutate(old)
        new = copy.deepcopy(old)
        for mutate in self.after:
            mutate(new)
        return old, new


ELASTIC_BEFORE = (_set("spec.elasticPolicy", ELASTIC),)
SUSPENDED_BEFORE = (_set("spec.runPolicy.suspend", True),)
NEW_IMAGE = _set(f"{W}.template.spec.containers", [{"name": "trainer", "image": "other:2"}])

UPDATES: list[Update] = [
    Update(
        "add-role",
        (),
        (_set("spec.replicaSpecs.ps", {"template": template()}),),
        "spec.replicaSpecs",
    ),
    Update("add-elastic", (), (_set("spec.elasticPolicy", ELASTIC),), "spec.elasticPolicy"),
    Update(
        "remove-elastic",
        ELASTIC_BEFORE,
        (_set("spec.elasticPolicy", DELETE),),
        "spec.elasticPolicy",
    ),
    Update(
        "rdzv-port",
        ELASTIC_BEFORE,
        (_set("spec.elasticPolicy.rdzvPort", 29500),),
        "spec.elasticPolicy.rdzvPort",
    ),
    Update(
        "ps-replicas",
        (_set("spec.replicaSpecs.ps", {"replicas": 1, "template": template()}),),
        (_set("spec.replicaSpecs.ps.replicas", 2),),
        "spec.replicaSpecs.ps.replicas",
    ),
    Update("success-policy", (), (_set("spec.successPolicy", "Chief"),), "spec.successPolicy"),
    Update("template-running", (), (NEW_IMAGE,), f"{W}.template"),
    Update("gpus-running", (), (_set(f"{W}.gpus", 1),), f"{W}.gpus"),
    Update("nproc-running", (), (_set("spec.nprocPerNode", 2),), "spec.nprocPerNode"),
    Update(
        "scheduling-running",
        (),
        (_set("spec.runPolicy.schedulingPolicy", {"priorityClassName": "high"}),),
        "spec.runPolicy.schedulingPolicy",
    ),
    # Allowed updates.
    # Non-elastic: the operator recreates every pod with the new world size.
    Update("scale-fixed-size", (), (_set(f"{W}.replicas", 3),), None),
    Update("scale-elastic", ELASTIC_BEFORE, (_set(f"{W}.replicas", 4),), None),
    Update(
        "widen-elastic-range",
        ELASTIC_BEFORE,
        (_set("spec.elasticPolicy.maxReplicas", 8), _set(f"{W}.replicas", 6)),
        None,
    ),
    Update("backoff-limit", (), (_set("spec.runPolicy.backoffLimit", 10),), None),
    Update("suspend", (), (_set("spec.runPolicy.suspend", True),), None),
    Update("template-suspended", SUSPENDED_BEFORE, (NEW_IMAGE,), None),
    Update(
        "resume-with-new-template",
        SUSPENDED_BEFORE,
        (NEW_IMAGE, _set("spec.runPolicy.suspend", False), _set("spec.nprocPerNode", 2)),
        None,
    ),
    Update("restart-policy", (), (_set(f"{W}.restartPolicy", "Never"),), None),
]


# Fields whose values the API and the parser both constrain, with values near their limits.
FUZZ_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "spec.replicaSpecs.worker.replicas": st.integers(-1, 10000),
    "spec.replicaSpecs.worker.restartPolicy": st.sampled_from(["Never", "ExitCode", "Sometimes"]),
    "spec.replicaSpecs.worker.gpus": st.integers(-1, 65),
    "spec.replicaSpecs.ps": st.sampled_from(
        [None, {"template": template()}, {"replicas": 0, "template": template()}]
    ),
    "spec.replicaSpecs.chief": st.sampled_from(
        [None, {"template": template()}, {"replicas": 2, "template": template()}]
    ),
    "spec.elasticPolicy": st.sampled_from(
        [
            None,
            ELASTIC,
            {"minReplicas": 3, "maxReplicas": 2},
            {"minReplicas": 2, "maxReplicas": 8},
            {**ELASTIC, "trimPendingWorkers": True},
            {**ELASTIC, "trimPendingWorkers": True, "pendingTimeoutSeconds": 60},
        ]
    ),
    "spec.nprocPerNode": st.sampled_from([None, "auto", "two", 0, 1, 8]),
    "spec.successPolicy": st.sampled_from([None, "AllWorkers", "Chief", "Any"]),
    "spec.runPolicy.backoffLimit": st.integers(-1, 1001),
    "spec.runPolicy.cleanPodPolicy": st.sampled_from(["All", "Running", "None", "Some"]),
    "spec.runPolicy.retryableExitCodes": st.sampled_from([None, [137], [0], [137, 137], [256]]),
    "spec.runPolicy.schedulingPolicy": st.sampled_from(
        [None, {"minAvailable": 1}, {"minAvailable": 3}, {"queue": "Q"}]
    ),
    "spec.runPolicy.restartBackoff": st.sampled_from(
        [None, {"initialSeconds": 5, "maxSeconds": 1}, {"initialSeconds": 0}]
    ),
    "metadata.name": st.sampled_from(["ok", "x" * 48, "x" * 49, "Bad", "a-", "a1"]),
}


def set_path(obj: Obj, path: str, value: Any) -> None:
    """Set the dotted ``path`` of ``obj`` to ``value`` (None removes it)."""
    *parents, last = path.split(".")
    node = obj
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)
