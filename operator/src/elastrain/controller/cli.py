"""``python -m elastrain operator``: run the operator against KUBECONFIG or the in-cluster config.

kopf installs SIGTERM/SIGINT handlers when run in the main thread: on a signal it stops the
watches, runs the cleanup handler (workers cancelled, metrics server closed) and returns, so a
pod's ``terminationGracePeriodSeconds`` is enough for a clean exit.
"""

from __future__ import annotations

import argparse
import logging
import secrets

import kopf
import prometheus_client

from elastrain.controller.config import OperatorConfig
from elastrain.kube.client import DEFAULT_BURST, DEFAULT_QPS

MIN_PEERING_LIFETIME = 10
# The flags' defaults are OperatorConfig's: one place for each.
_DEFAULTS = OperatorConfig()


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the flags (the Helm chart sets the namespaces, ports, log format, workers, peering,
    progress interval and stall-after from its values)."""
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeatable); absent: cluster-wide",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=_DEFAULTS.metrics_port, help="0 disables /metrics"
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=_DEFAULTS.health_port,
        help="liveness at GET /healthz; 0 disables it",
    )
    parser.add_argument(
        "--peering",
        metavar="NAME",
        help="kopf peering object name (needs the KopfPeering CRDs); absent: standalone",
    )
    parser.add_argument(
        "--peering-priority",
        type=_positive_int,
        metavar="N",
        help="kopf peering priority, >= 1 (the highest live peer is the active one); "
        "absent: a random one per process",
    )
    parser.add_argument(
        "--peering-lifetime",
        type=_peering_lifetime,
        default=_DEFAULTS.peering_lifetime,
        metavar="SECONDS",
        help="how long this operator's peering record is valid, >= 10: a standby takes over "
        "within about this long after the active operator dies",
    )
    parser.add_argument("--log-format", choices=("plain", "json"), default="plain")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=_DEFAULTS.workers,
        help="jobs reconciled concurrently, >= 1",
    )
    parser.add_argument(
        "--kube-qps", type=float, default=DEFAULT_QPS, help="client-side API rate limit"
    )
    parser.add_argument("--kube-burst", type=int, default=DEFAULT_BURST, help="rate-limit burst")
    parser.add_argument(
        "--progress-interval",
        type=_non_negative,
        default=_DEFAULTS.progress_interval,
        metavar="SECONDS",
        help="read each running job's rank-0 trainer metrics this often into status.progress "
        "(at most one status write per job per interval); 0 disables",
    )
    parser.add_argument(
        "--stall-after",
        type=_non_negative,
        default=_DEFAULTS.stall_after,
        metavar="SECONDS",
        help="a Running job whose training step has not advanced for this long gets "
        "Stalled=True and a TrainingStalled Event; 0 disables",
    )


def _non_negative(raw: str) -> float:
    value = float(raw)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {raw}")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _peering_lifetime(raw: str) -> int:
    value = _positive_int(raw)
    if value < MIN_PEERING_LIFETIME:
        # kopf renews a record 5-10 s before it runs out: below 10 s that is every second.
        raise argparse.ArgumentTypeError(f"must be at least {MIN_PEERING_LIFETIME}, not {value}")
    return value


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    """The typed configuration of parsed flags."""
    return OperatorConfig(
        namespaces=tuple(args.namespace),
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        peering=args.peering,
        peering_priority=args.peering_priority,
        peering_lifetime=args.peering_lifetime,
        log_format=args.log_format,
        verbose=args.verbose,
        workers=args.workers,
        kube_qps=args.kube_qps,
        kube_burst=args.kube_burst,
        progress_interval=args.progress_interval,
        stall_after=args.stall_after,
    )


def peering_priority(config: OperatorConfig) -> int:
    """The kopf peering priority: the configured one, else a random one per process, since kopf
    pauses *every* peer when two share a priority (kopf #734); 0 when standalone."""
    if config.peering is None:
        return 0
    if config.peering_priority is not None:
        return config.peering_priority
    return secrets.randbelow(2**31 - 1) + 1


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    # Imported here: kopf's handlers (and through them the planner) only serve this command.
    from elastrain.controller import handlers

    config = config_from_args(args)
    kopf.configure(
        verbose=config.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.PLAIN,
        log_refkey="k8s" if config.log_format == "json" else None,
    )
    if not config.verbose:
        # kopf logs every handler success per object at INFO: one line per pod event.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # One sample per series: no ``*_created`` timestamps doubling every counter on /metrics.
    prometheus_client.disable_created_metrics()
    logging.getLogger(__name__).info(
        "starting: namespaces=%s peering=%s", list(config.namespaces) or "*", config.peering
    )
    kopf.run(
        registry=handlers.registry,
        # The startup handler builds the run's Runtime from this and keeps it in the memo.
        memo=handlers.memo_for(config),
        standalone=config.peering is None,
        peering_name=config.peering,
        priority=peering_priority(config),
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=(
            f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None
        ),
    )
    return 0
