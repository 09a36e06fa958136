"""Hypothesis-generated TrainingJobs through the real kube-apiserver's admission: for random edits
of a valid job near every limit (``api_cases.FUZZ_FIELDS``), the real API server accepts exactly
what the operator's parser accepts, and every refusal names a field. The same edits run against
the embedded validator in ``tests/api/test_api_fuzz.py``; this holds the reference to them.

Jobs are sent with ``dryRun=All``: admission in full (schema, CEL, defaults), nothing stored.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from typing import Any

import figures
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_control_plane import REPO, RealCluster

sys.path.insert(0, str(REPO / "tests" / "api"))
from api_cases import FUZZ_FIELDS, base_job, set_path
from elastrain.api.errors import SpecInvalid
from elastrain.api.parse import parse_training_job

pytestmark = [pytest.mark.slow, pytest.mark.real]

TJ_PATH = "/apis/elastrain.dev/v1alpha1/namespaces/default/trainingjobs"
CREATE = {"fieldValidation": "Strict", "dryRun": "All"}
TRIED: list[int] = [0, 0]  # inputs tried, refused: the figure printed at the end


@pytest.fixture(scope="module")
def crd_installed(real_cluster: RealCluster) -> Iterator[RealCluster]:
    real_cluster.kubectl("apply", "-f", str(REPO / "crds"))
    crd = "crd/trainingjobs.elastrain.dev"
    real_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", crd)
    yield real_cluster
    figures.report(f"real admission fuzzing: {TRIED[0]} inputs tried, {TRIED[1]} refused")


def _parses(obj: dict[str, Any]) -> bool:
    try:
        parse_training_job(copy.deepcopy(obj))
    except SpecInvalid:
        return False
    return True


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.sampled_from(sorted(FUZZ_FIELDS)), st.data()), max_size=4), st.data())
def test_the_real_admission_accepts_exactly_what_the_parser_accepts(
    crd_installed: RealCluster, edits: list[tuple[str, Any]], data: st.DataObject
) -> None:
    obj = base_job()
    for path, _ in edits:
        set_path(obj, path, data.draw(FUZZ_FIELDS[path], label=path))
    resp = crd_installed.api.call("POST", TJ_PATH, obj, query=CREATE)
    TRIED[0] += 1
    if resp.status != 201:
        TRIED[1] += 1
        # 422 for schema and CEL errors, 400 for strict decoding; each names what it refuses.
        assert resp.status in (400, 422), resp.body
        causes = (resp.body.get("details") or {}).get("causes") or []
        assert causes or "spec" in resp.message or "metadata" in resp.message, resp.body
    assert _parses(obj) == (resp.status == 201), resp.body
