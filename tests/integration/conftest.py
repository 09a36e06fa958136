"""The integration suite's fixtures live in ``tests/cluster_fixtures.py``, shared with
``tests/reliability``: one cluster and one operator per module, a namespace per test."""

from cluster_fixtures import *  # noqa: F403
