"""``JobStatus``, the status type the code is checked against, names the schema's fields.

The schema is what the API server enforces (``status_schema``); the TypedDicts are what mypy
holds the planner to. A field added to one and not the other would be either pruned by the API
server or written untyped.
"""

from __future__ import annotations

from typing import Any

from elastrain.api import constants as c
from elastrain.api.job_status import JobCondition, JobStatus, RoleCounts
from elastrain.api.status_schema import status_schema


def _keys(typed: Any) -> set[str]:
    return set(typed.__required_keys__ | typed.__optional_keys__)


def test_job_status_has_the_schemas_status_fields() -> None:
    assert _keys(JobStatus) == set(status_schema()["properties"])
    assert not JobStatus.__required_keys__  # the schema requires none


def test_conditions_have_the_schemas_fields_and_required_ones() -> None:
    item = status_schema()["properties"]["conditions"]["items"]
    assert _keys(JobCondition) == set(item["properties"])
    assert JobCondition.__required_keys__ == set(item["required"])


def test_role_counts_have_the_schemas_fields_for_every_role() -> None:
    roles = status_schema()["properties"]["replicaStatuses"]["properties"]
    assert set(roles) == set(c.ROLES)
    for counts in roles.values():
        assert _keys(RoleCounts) == set(counts["properties"])
        # The planner writes every count of a role it reports.
        assert RoleCounts.__required_keys__ == set(counts["properties"])
