"""Training progress of one pod, read from the trainer's Prometheus endpoint.

On the sandbox every pod has its own IP on a bridge the host is attached to, so the demo
scrapes ``http://<podIP>:<port>/metrics`` directly, like Prometheus would. On a real cluster pod
IPs are usually unreachable from a laptop, so the same text is fetched through the API server's
pod proxy (``/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/metrics``).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

DEFAULT_METRICS_PORT = 9090  # the trainer's --metrics-port default
METRICS_PORT_NAME = "metrics"
SCRAPE_TIMEOUT = 1.0
PREFIX = "elastrain_trainer_"
PS_ROLE = "ps"


@dataclass(frozen=True)
class Progress:
    """The trainer gauges the demo shows, from the lowest worker rank a scrape holds."""

    rank: int
    step: int
    loss: float
    restarts: int
    last_checkpoint_step: int
    world_size: int


def parse(text: str) -> Progress | None:
    """The worker gauges of a scrape (ps shards report no loss); None before the first step."""
    by_rank: dict[int, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith(PREFIX) or sample.labels.get("role") == PS_ROLE:
                continue
            rank = int(sample.labels.get("rank") or 0)
            by_rank.setdefault(rank, {})[sample.name[len(PREFIX) :]] = float(sample.value)
    for rank in sorted(by_rank):
        values = by_rank[rank]
        if values.get("step", 0) < 1:  # gauges exist, at 0, before the first step
            continue
        try:
            return Progress(
                rank=rank,
                step=int(values["step"]),
                loss=values["loss"],
                restarts=int(values["restarts"]),
                last_checkpoint_step=int(values["last_checkpoint_step"]),
                world_size=int(values["world_size"]),
            )
        except KeyError:
            continue
    return None


def metrics_port(pod: dict[str, Any]) -> int:
    """The container port named ``metrics``, else the trainer's default."""
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == METRICS_PORT_NAME:
                return int(port["containerPort"])
    return DEFAULT_METRICS_PORT


def scrape_direct(pod: dict[str, Any]) -> str | None:
    """``/metrics`` from the pod IP (sandbox); None while the pod has no IP or no endpoint."""
    ip = pod.get("status", {}).get("podIP")
    if not ip:
        return None
    url = f"http://{ip}:{metrics_port(pod)}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:
            return str(response.read().decode())
    except (OSError, urllib.error.URLError):
        return None


Scraper = Callable[[dict[str, Any]], str | None]


def read(pod: dict[str, Any], scrape: Scraper) -> Progress | None:
    """The pod's progress, None when it cannot be read (not started, restarting)."""
    text = scrape(pod)
    return parse(text) if text else None
