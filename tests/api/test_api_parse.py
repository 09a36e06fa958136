"""``parse_training_job`` and the update rules' model (``update_rules``): defaults, every bad spec,
every update rule."""

from __future__ import annotations

import copy

import pytest
from api_cases import BAD, GOOD, UPDATES, Bad, Good, Update, base_job, example_jobs, template
from elastrain.api.errors import FieldError, SpecInvalid
from elastrain.api.parse import parse_training_job
from elastrain.api.types import (
    CleanPodPolicy,
    RestartPolicy,
    RunPolicy,
    SuccessPolicy,
)
from update_rules import update_errors, validate_update


def test_defaults_are_applied() -> None:
    job = parse_training_job(base_job())
    worker = job.spec.replica_specs["worker"]
    assert worker.replicas == 2
    assert worker.restart_policy is RestartPolicy.ON_FAILURE
    assert worker.gpus is None
    assert job.spec.run_policy == RunPolicy()
    assert job.spec.run_policy.clean_pod_policy is CleanPodPolicy.RUNNING
    assert job.spec.nproc_per_node == "auto"
    assert job.spec.success_policy is SuccessPolicy.ALL_WORKERS
    assert job.spec.elastic_policy is None
    assert (job.name, job.namespace) == ("mnist", "default")


def test_replicas_default_to_one_and_elastic_defaults() -> None:
    obj = base_job()
    del obj["spec"]["replicaSpecs"]["worker"]["replicas"]
    obj["spec"]["elasticPolicy"] = {"minReplicas": 1, "maxReplicas": 3}
    job = parse_training_job(obj)
    assert job.spec.replica_specs["worker"].replicas == 1
    elastic = job.spec.elastic_policy
    assert elastic is not None
    assert (elastic.rdzv_backend, elastic.rdzv_port, elastic.max_restarts) == ("c10d", 29400, 3)
    assert elastic.pending_timeout_seconds is None  # never reported unless asked for
    obj["spec"]["elasticPolicy"]["pendingTimeoutSeconds"] = 600
    assert parse_training_job(obj).spec.elastic_policy.pending_timeout_seconds == 600  # type: ignore[union-attr]


def test_full_spec_round_trips() -> None:
    obj = base_job()
    spec = obj["spec"]
    spec["replicaSpecs"]["worker"].update(restartPolicy="ExitCode", gpus=2)
    spec["replicaSpecs"]["ps"] = {"replicas": 1, "restartPolicy": "Always", "template": template()}
    spec["nprocPerNode"] = 2
    spec["successPolicy"] = "AllWorkers"
    spec["runPolicy"] = {
        "backoffLimit": 2,
        "activeDeadlineSeconds": 3600,
        "ttlSecondsAfterFinished": 60,
        "cleanPodPolicy": "Running",
        "suspend": True,
        "schedulingPolicy": {"queue": "team-a", "minAvailable": 3, "priorityClassName": "high"},
        "retryableExitCodes": [137, 143, 42],
        "restartBackoff": {"initialSeconds": 0, "maxSeconds": 30},
    }
    job = parse_training_job(obj)
    rp = job.spec.run_policy
    assert rp.retryable_exit_codes == (137, 143, 42)
    assert rp.is_retryable(42) and not rp.is_retryable(1)
    assert rp.scheduling_policy is not None and rp.scheduling_policy.min_available == 3
    assert (rp.restart_backoff.initial_seconds, rp.restart_backoff.max_seconds) == (0, 30)
    assert job.spec.replica_specs["ps"].restart_policy is RestartPolicy.ALWAYS
    assert job.spec.replica_specs["worker"].gpus == 2
    assert job.spec.nproc_per_node == 2


@pytest.mark.parametrize(("name", "obj"), example_jobs())
def test_examples_parse(name: str, obj: dict[str, object]) -> None:
    parse_training_job(obj)


@pytest.mark.parametrize("case", GOOD, ids=[g.id for g in GOOD])
def test_good_spec_parses(case: Good) -> None:
    parse_training_job(case.build())


@pytest.mark.parametrize("case", BAD, ids=[b.id for b in BAD])
def test_bad_spec_is_rejected_naming_the_field(case: Bad) -> None:
    with pytest.raises(SpecInvalid) as info:
        parse_training_job(case.build())
    paths = [e.path for e in info.value.errors]
    assert any(case.field in p for p in paths), f"{case.field} not in {paths}"


def test_every_error_is_reported_at_once() -> None:
    obj = base_job(name="x" * 60)
    obj["spec"]["replicaSpecs"]["worker"]["restartPolicy"] = "Sometimes"
    obj["spec"]["runPolicy"] = {"backoffLimit": -1, "cleanPodPolicy": "Some"}
    with pytest.raises(SpecInvalid) as info:
        parse_training_job(obj)
    assert {e.path for e in info.value.errors} == {
        "metadata.name",
        "spec.replicaSpecs.worker.restartPolicy",
        "spec.runPolicy.backoffLimit",
        "spec.runPolicy.cleanPodPolicy",
    }
    text = str(info.value)
    assert "spec.runPolicy.backoffLimit: must be at least 0, got -1" in text
    assert text.count("; ") == 3


def test_gpu_limit_in_template_must_agree_with_gpus() -> None:
    obj = base_job()
    worker = obj["spec"]["replicaSpecs"]["worker"]
    worker["gpus"] = 2
    worker["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    with pytest.raises(SpecInvalid, match=r"containers\[0\]\.resources\.limits"):
        parse_training_job(obj)
    worker["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "2"
    assert parse_training_job(obj).spec.replica_specs["worker"].gpus == 2


@pytest.mark.parametrize("bad_input", [None, [], "job", 3])
def test_non_object_input_is_a_clear_error(bad_input: object) -> None:
    with pytest.raises(SpecInvalid, match="must be an object"):
        parse_training_job(bad_input)  # type: ignore[arg-type]


def test_wrong_kind_and_version() -> None:
    obj = base_job()
    obj["kind"], obj["apiVersion"] = "PyTorchJob", "kubeflow.org/v1"
    with pytest.raises(SpecInvalid) as info:
        parse_training_job(obj)
    assert [e.path for e in info.value.errors] == ["apiVersion", "kind"]


def test_null_optional_fields_count_as_absent() -> None:
    obj = base_job()
    obj["spec"]["replicaSpecs"]["ps"] = None
    obj["spec"]["elasticPolicy"] = None
    job = parse_training_job(obj)
    assert set(job.spec.replica_specs) == {"worker"}


def test_spec_invalid_needs_errors() -> None:
    with pytest.raises(ValueError, match="needs at least one FieldError"):
        SpecInvalid([])
    err = SpecInvalid([FieldError("a.b", "bad"), FieldError("c", "worse")])
    assert str(err) == "a.b: bad; c: worse"


def test_parse_does_not_mutate_input() -> None:
    obj = base_job()
    before = copy.deepcopy(obj)
    parse_training_job(obj)
    assert obj == before


@pytest.mark.parametrize("case", UPDATES, ids=[u.id for u in UPDATES])
def test_update_rules(case: Update) -> None:
    old_obj, new_obj = case.build()
    old, new = parse_training_job(old_obj), parse_training_job(new_obj)
    errors = update_errors(old, new)
    if case.field is None:
        assert errors == []
        validate_update(old, new)
    else:
        assert case.field in [e.path for e in errors], errors
        with pytest.raises(SpecInvalid):
            validate_update(old, new)


def test_template_metadata_errors_name_the_entry() -> None:
    """Map entries are named ``labels[<key>]``: keys contain dots and slashes themselves."""
    obj = base_job()
    obj["spec"]["replicaSpecs"]["worker"]["template"]["metadata"] = {
        "labels": {"bad key": "x", "team": "a" * 64, "elastrain.dev/job-name": "x", "ok": ""},
        "annotations": {"example.com/a": "x" * 262_130, "Bad/x": "yy"},
    }
    with pytest.raises(SpecInvalid) as info:
        parse_training_job(obj)
    at = "spec.replicaSpecs.worker.template.metadata"
    assert [str(e) for e in info.value.errors] == [
        f"{at}.labels[bad key]: key must be a qualified name: an optional DNS-1123 subdomain "
        "prefix and '/', then a name of at most 63 characters (letters, digits, '-', '_' and "
        "'.', starting and ending with a letter or digit)",
        f"{at}.labels[team]: value must be at most 63 characters, got 64",
        f"{at}.labels[elastrain.dev/job-name]: is set by the operator; remove it",
        f"{at}.annotations[Bad/x]: key must be a qualified name: an optional DNS-1123 subdomain "
        "prefix and '/', then a name of at most 63 characters (letters, digits, '-', '_' and "
        "'.', starting and ending with a letter or digit)",
        f"{at}.annotations: total size of keys and values must be at most 262144 bytes "
        "(256 KiB), got 262150",
    ]
