"""Error types the CLI maps onto exit codes.

A usage error (bad flag, bad env value, bad cluster spec) exits 2 with one readable line, so a
user reading `kubectl logs` sees what to fix instead of a traceback; the operator's ExitCode
policy treats 2 as permanent, which is right: retrying a bad spec cannot help.
"""


class UsageError(Exception):
    """The job was configured wrongly; retrying will not help (exit code 2)."""


EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
# 128 + SIGTERM: the operator's ExitCode restart policy treats 128-255 as retryable.
EXIT_PREEMPTED = 143
# A peer stopped on purpose (its pod was deleted: a scale-down or an eviction) and this rank,
# healthy, stopped with it after the shared checkpoint. Only `elastrain-torchrun`'s agent sees
# it, and it re-rendezvouses without spending one of torchrun's --max-restarts; the agent says
# so through REGROUP_EXIT_ENV, and without it (plain torchrun, plain wiring) a rank exits
# EXIT_PREEMPTED as before. 75 is EX_TEMPFAIL: "try again", in the 1-127 range no signal uses.
EXIT_REGROUP = 75
# ps mode: a worker lost a parameter server mid-run (connection refused or cut). 128 + SIGUSR1,
# Kubeflow's code for a retryable error of the user's own: the operator restarts the whole job
# for the lost ps anyway, and counts the worker's exit as part of that restart, not on its own.
EXIT_PS_LOST = 138
REGROUP_EXIT_ENV = "ELASTRAIN_REGROUP_EXIT_CODE"
