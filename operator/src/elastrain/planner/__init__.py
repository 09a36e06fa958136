"""The planner: pure ``plan(job, observed) -> Plan`` (see ``plan.py``, docs/lifecycle.md)."""

from elastrain.planner.plan import plan

__all__ = ["plan"]
