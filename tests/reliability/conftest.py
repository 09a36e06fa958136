"""The reliability suites run on the integration suite's clusters and operators
(``tests/cluster_fixtures.py``: ``ELASTRAIN_CLUSTER`` picks embedded, real or a kubeconfig)."""

import sys
from pathlib import Path

# The operator harness lives with the integration suite; pytest puts that folder on sys.path
# only when it collects it.
_INTEGRATION = str(Path(__file__).resolve().parents[1] / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)

from cluster_fixtures import *  # noqa: E402, F403
