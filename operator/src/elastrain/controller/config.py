"""The operator's command-line configuration, independent of argparse so tests can build one."""

from __future__ import annotations

from dataclasses import dataclass, field

from elastrain.kube.client import DEFAULT_BURST, DEFAULT_QPS


@dataclass(frozen=True)
class OperatorConfig:
    """Everything ``python -m elastrain operator`` can be told."""

    namespaces: tuple[str, ...] = field(default_factory=tuple)  # empty: cluster-wide
    metrics_port: int = 8080  # 0: no metrics endpoint
    health_port: int = 8081  # 0: no liveness endpoint
    peering: str | None = None  # None: standalone
    peering_priority: int | None = None  # None: random per process (see cli.peering_priority)
    # Seconds a peer's record stays valid: a standby takes over this long after the active
    # operator dies without a goodbye (SIGKILL, node loss). kopf's own default; each operator
    # renews its record 5-10 s before it runs out.
    peering_lifetime: int = 60
    log_format: str = "plain"
    verbose: bool = False
    # Jobs reconciled concurrently. Each worker is an asyncio task that mostly waits on the API
    # server, so more cost little: make bench's 300-job growth (at --kube-qps 1000; the default
    # 20 writes/s caps throughput before the workers do) went from 303 to 413 pods/s (embedded)
    # and 158 to 172 (real) from 4 to 16, at the same CPU per job.
    workers: int = 16
    kube_qps: float = DEFAULT_QPS
    kube_burst: int = DEFAULT_BURST
    # Seconds between readings of each running job's rank-0 metrics (status.progress); 0: off.
    progress_interval: float = 15.0
    # A Running job whose training step has not moved for this long is Stalled; 0: never.
    stall_after: float = 600.0
