"""Children the API server refuses: a template it calls invalid fails the job after a few tries.

A 422 on create is not transient: the same object would be refused again, and retrying it
forever would leave a job Created with nothing running and its owner told only by Warning
Events. The reconciler reports each refusal in the next observation (``Observed.rejected``);
the count lives in ``status.tracking.rejected`` for the spec generation it was refused at (an
edit of the spec starts it over), and at :data:`REJECTION_LIMIT` the job fails with reason
:data:`REASON` and the server's own message. Between tries the work queue's back-off applies.
"""

from __future__ import annotations

from elastrain.planner.restarts import Fatal, Rejected
from elastrain.planner.state import State

REJECTION_LIMIT = 3
REASON = "CreateRejected"


def account(state: State) -> Fatal | None:
    """Count the refusal this observation reports; the job's failure once it reaches the limit."""
    tracking = state.tracking
    generation = state.job.generation
    if tracking.rejected is not None and tracking.rejected.generation != generation:
        tracking.rejected = None  # the spec changed since: its template may be fixed
    rejection = state.observed.rejected
    if rejection is None:
        return None
    count = (tracking.rejected.count if tracking.rejected is not None else 0) + 1
    what = f"{rejection.kind} {rejection.name}: {rejection.message}"
    tracking.rejected = Rejected(count=count, generation=generation, message=what)
    if count < REJECTION_LIMIT:
        return None
    return Fatal(REASON, f"the API server refused {what} ({count} attempts)")
