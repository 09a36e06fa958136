"""Hostile and oversized inputs: each is refused at admission naming its field, or reaches a
clear status; the operator never crashes and never leaves a partial set of pods.

* at every limit at once (a 48-character name, a 63-character label value, about 200 KiB of
  annotations, 300 env vars of unicode and shell metacharacters): the job runs, and its pods
  carry every value byte for byte (the operator neither drops nor re-quotes anything);
* beyond a limit the API server checks (a 1 MiB annotation, 10,000 replicas, a 49-character
  name): 422 naming the field, and nothing stored;
* beyond a limit only the operator checks (template annotations over 256 KiB): ``Failed`` with
  ``InvalidSpec``, the limit in the message, and no pod;
* the most replicas allowed (9,999), suspended: admitted, ``Suspended``, no pod.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import figures
import pytest
from operator_harness import Cluster, Operator, training_job

pytestmark = pytest.mark.slow

TJ = "/apis/elastrain.dev/v1alpha1/namespaces/{ns}/trainingjobs"
# Strings that break naive shell, YAML, JSON, template and SQL handling, and non-ASCII text.
HOSTILE = [
    "$(touch /tmp/elastrain-pwned)",
    "`id`; rm -rf / #",
    "' OR '1'='1",
    '"; DROP TABLE jobs; --',
    "{{ .Values.secret }}",
    "${HOME} %s %n \\x00",
    "a\nb\r\nc\td",
    "日本語のテキスト 🚀 ñ ü ß",
    "\u202etxt.exe",
    "<script>alert(1)</script>",
]


# Inputs tried, by outcome, for the figures line (counted once a case's asserts have passed).
TRIED: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _figures(cluster: Cluster) -> Iterator[None]:
    yield
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(TRIED.items()))
    figures.report(
        f"hostile inputs ({cluster.kind}): {TRIED.total()} inputs tried: {outcomes}; "
        "the operator stayed up, without a traceback, after each"
    )


def _at_every_limit(name: str) -> dict[str, Any]:
    job = training_job(name, "exec sleep 300", workers=2)
    worker = job["spec"]["replicaSpecs"]["worker"]
    env = [
        {"name": f"HOSTILE_{i}", "value": HOSTILE[i % len(HOSTILE)] * (1 + i % 30)}
        for i in range(300)
    ]
    worker["template"]["spec"]["containers"][0]["env"] = env
    worker["template"]["spec"]["containers"][0]["args"] = HOSTILE
    worker["template"]["metadata"] = {
        "labels": {"team": "x" * 63},
        "annotations": {f"example.com/blob-{i}": "y" * 50_000 for i in range(4)},
    }
    return job


def _post(cluster: Cluster, ns: str, job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = cluster.api.call("POST", TJ.format(ns=ns), job, query={"fieldValidation": "Strict"})
    return resp.status, resp.body


def _alive(operator: Operator) -> None:
    assert operator.proc is not None and operator.proc.poll() is None, operator.log_tail()
    assert "Traceback" not in operator.log_path.read_text(errors="replace"), operator.log_tail()


def test_a_job_at_every_limit_runs_with_its_values_intact(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    name = "h" * 48
    job = _at_every_limit(name)
    # Created, not applied: kubectl apply would copy the whole object into its
    # last-applied-configuration annotation, itself over the 256 KiB limit.
    status, body = _post(cluster, ns, job)
    assert status == 201, body
    cluster.wait_phase(ns, name, "Running", timeout=90, operator=operator)
    pods = cluster.pods(ns, name)
    assert sorted(p["metadata"]["name"] for p in pods) == [f"{name}-worker-{i}" for i in (0, 1)]
    sent = job["spec"]["replicaSpecs"]["worker"]["template"]
    for pod in pods:
        ctr = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in ctr["env"]}
        assert all(env[e["name"]] == e["value"] for e in sent["spec"]["containers"][0]["env"])
        assert ctr["args"] == HOSTILE
        assert pod["metadata"]["labels"]["team"] == "x" * 63
        for key, value in sent["metadata"]["annotations"].items():
            assert pod["metadata"]["annotations"][key] == value
    _alive(operator)
    TRIED["ran with every value intact"] += 1


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("a 1 MiB annotation", "metadata.annotations"),
        ("10000 replicas", "spec.replicaSpecs.worker.replicas"),
        ("a 49-character name", "metadata.name"),
    ],
)
def test_oversized_inputs_are_refused_at_admission_naming_the_field(
    cluster: Cluster, operator: Operator, ns: str, case: str, field: str
) -> None:
    job = training_job("big", "exec sleep 300")
    if case == "a 1 MiB annotation":
        job["metadata"]["annotations"] = {"example.com/blob": "z" * (1 << 20)}
    elif case == "10000 replicas":
        job["spec"]["replicaSpecs"]["worker"]["replicas"] = 10000
    else:
        job["metadata"]["name"] = "n" * 49
    status, body = _post(cluster, ns, job)
    assert status == 422, body
    assert field in str(body.get("message")), body
    assert not cluster.items("elastrain.dev/v1alpha1", "trainingjobs", ns)
    _alive(operator)
    TRIED["refused at admission naming the field"] += 1


def test_template_annotations_over_the_limit_fail_the_job_with_a_clear_reason(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    job = training_job("fat", "exec sleep 300", workers=2)
    template = job["spec"]["replicaSpecs"]["worker"]["template"]
    template["metadata"] = {"annotations": {f"example.com/b{i}": "w" * 100_000 for i in range(3)}}
    status, body = _post(cluster, ns, job)
    assert status == 201, body
    done = cluster.wait_phase(ns, "fat", "Failed", operator=operator)
    failed = next(c for c in done["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec", failed
    assert "annotations" in failed["message"] and "256 KiB" in failed["message"], failed
    assert cluster.pods(ns, "fat") == []
    _alive(operator)
    TRIED["failed with InvalidSpec and no pod"] += 1


def test_the_most_replicas_allowed_are_admitted_and_stay_suspended(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    job = training_job("many", "exec sleep 300", workers=9999, run_policy={"suspend": True})
    cluster.apply(ns, job)
    cluster.wait_phase(ns, "many", "Suspended", operator=operator)
    assert cluster.pods(ns, "many") == []
    _alive(operator)
    TRIED["admitted and Suspended with no pod"] += 1
