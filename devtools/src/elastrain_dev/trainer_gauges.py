"""What a running trainer says about itself, read from its pod's ``/metrics`` endpoint.

The bench (P5) and the integration suite both judge "training" by the trainer's own gauges rather
than by pod phases: a pod can run while its process waits for a rendezvous. One place to parse
them keeps the two from drifting. Scraping needs the pod's IP to be reachable from here, which is
true of the sandbox's node agent (embedded and real control plane) and of no production cluster;
there, ``kubectl port-forward`` or Prometheus reads the same gauges.
"""

from __future__ import annotations

import http.client
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "elastrain_trainer_"
METRICS_PORT = 9090
SCRAPE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Reading:
    """One trainer process's gauges, from its pod's endpoint."""

    pod: str
    rank: int
    step: int
    world_size: int
    round: int
    checkpoint: int
    restarts: int
    loss: float

    @property
    def trained(self) -> bool:
        """At least one step done by this process: a new process's step gauge is 0 until its
        first sync step, then the job's step (above the checkpoint it resumed from)."""
        return self.step >= 1


def parse_readings(pod: str, text: str) -> list[Reading]:
    """Every worker rank's gauges in one scrape (a process not yet at its first sync step
    serves no labelled gauges, and gives nothing)."""
    by_rank: dict[int, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(PREFIX) and sample.labels.get("role") == "worker":
                rank = int(sample.labels.get("rank") or 0)
                by_rank.setdefault(rank, {})[sample.name[len(PREFIX) :]] = float(sample.value)
    return [
        Reading(
            pod=pod,
            rank=rank,
            step=int(values.get("step", 0)),
            world_size=int(values.get("world_size", 0)),
            round=int(values.get("rendezvous_round", -1)),
            checkpoint=int(values.get("last_checkpoint_step", -1)),
            restarts=int(values.get("restarts", 0)),
            loss=values.get("loss", float("nan")),
        )
        for rank, values in sorted(by_rank.items())
    ]


def scrape_pod(pod: Mapping[str, Any], port: int = METRICS_PORT) -> list[Reading]:
    """The readings of one pod (nothing while it has no IP or its endpoint does not answer:
    starting, between rendezvous rounds, or cut off by a process being replaced)."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return []
    try:
        url = f"http://{ip}:{port}/metrics"
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
            text = response.read().decode()
    except (OSError, http.client.HTTPException):
        return []
    return parse_readings(str(pod["metadata"]["name"]), text)


def scrape_pods(pods: Iterable[Mapping[str, Any]], port: int = METRICS_PORT) -> list[Reading]:
    """The readings of every pod that answers."""
    return [reading for pod in pods for reading in scrape_pod(pod, port)]


def one_round(readings: list[Reading], world: int) -> Reading | None:
    """A reading of a group that trains at ``world`` ranks, every rank answering from one
    rendezvous round with a step done; None until then."""
    ready = [r for r in readings if r.world_size == world and r.trained]
    rounds = {r.round for r in ready}
    return ready[0] if len(ready) == world and len(rounds) == 1 else None
