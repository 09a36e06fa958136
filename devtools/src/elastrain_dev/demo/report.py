"""The end of the demo: each job's outcome, read from the trainer's summary line and the job status.

The trainer prints one JSON object as its last line on the worker that owns the job summary
(rank 0 of a DDP job, worker 0 of a ps job); ``kubectl logs`` is how the demo reads it, as a
user would. The same records go to
``--result-json`` so that tests assert on what the system reported, not on what the demo printed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from elastrain_dev.demo.kubectl import Kubectl, KubectlError
from elastrain_dev.demo.view import align, restarts_text

SUMMARY_KEYS = ("steps", "first_loss", "final_loss")


def summary_line(log: str) -> dict[str, Any] | None:
    """The last line of ``log`` that is the trainer's JSON summary, or None.

    The pod log merges stdout and stderr, so a native warning written to stderr by another
    thread can follow the summary on the same line: only the leading JSON object counts.
    """
    decoder = json.JSONDecoder()
    for line in reversed(log.splitlines()):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            value, _ = decoder.raw_decode(text)
        except ValueError:
            continue
        if isinstance(value, dict) and all(key in value for key in SUMMARY_KEYS):
            return value
    return None


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wall_seconds(status: dict[str, Any]) -> float | None:
    """``completionTime - startTime`` of a finished job, None while either is missing."""
    start, end = _timestamp(status.get("startTime")), _timestamp(status.get("completionTime"))
    return (end - start).total_seconds() if start and end else None


@dataclass
class JobResult:
    """One job's outcome: its final status and every worker's trainer summary."""

    name: str
    description: str
    phase: str
    restart_count: int
    wall_seconds: float | None
    # The most restarts any rank's metrics reported while the job ran: only the rank that
    # prints the summary counts in it, and after a peer's failure that rank may count none.
    observed_trainer_restarts: int = 0
    summary: dict[str, Any] | None = None
    worker_summaries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def resumed_from_step(self) -> int:
        """The latest step any worker resumed from (0: none resumed)."""
        return max(
            (int(s.get("resumed_from_step") or 0) for s in self.worker_summaries.values()),
            default=0,
        )

    @property
    def trainer_restarts(self) -> int:
        """Restarts of the training processes, as the trainers' metrics and summaries count them."""
        counted = (int(s.get("restarts") or 0) for s in self.worker_summaries.values())
        return max([self.observed_trainer_restarts, *counted])

    def to_json(self) -> dict[str, Any]:
        """The ``--result-json`` record."""
        out = asdict(self)
        out["resumed_from_step"] = self.resumed_from_step
        out["trainer_restarts"] = self.trainer_restarts
        return out


def collect(
    kubectl: Kubectl,
    name: str,
    description: str,
    obj: dict[str, Any],
    workers: list[str],
    observed_trainer_restarts: int,
) -> JobResult:
    """``obj``'s final status plus the summary line of each worker pod in ``workers``."""
    status = obj.get("status") or {}
    result = JobResult(
        name=name,
        description=description,
        phase=str(status.get("phase", "Unknown")),
        restart_count=int(status.get("restartCount") or 0),
        wall_seconds=wall_seconds(status),
        observed_trainer_restarts=observed_trainer_restarts,
    )
    for pod in workers:
        try:
            found = summary_line(kubectl.run("logs", pod))
        except KubectlError:
            found = None
        if found is not None:
            result.worker_summaries[pod] = found
    # The rank that prints the summary is decided at rendezvous, not by pod index.
    result.summary = next(iter(result.worker_summaries.values()), None)
    return result


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _number(summary: dict[str, Any] | None, key: str, spec: str) -> str:
    if not summary or summary.get(key) is None:
        return "-"
    return format(summary[key], spec)


def table(results: list[JobResult]) -> list[str]:
    """The summary table printed at the end of the demo."""
    header = (
        "JOB",
        "RESULT",
        "STEPS",
        "LOSS FIRST -> FINAL",
        "RESTARTS",
        "RESUMED FROM",
        "WALL TIME",
        "SAMPLES/S",
    )
    rows = []
    for r in results:
        s = r.summary
        loss = f"{_number(s, 'first_loss', '.4f')} -> {_number(s, 'final_loss', '.4f')}"
        rows.append(
            (
                r.name,
                r.phase,
                _number(s, "steps", "d"),
                loss,
                restarts_text(r.restart_count, r.trainer_restarts),
                f"step {r.resumed_from_step}" if r.resumed_from_step else "-",
                _duration(r.wall_seconds),
                _number(s, "samples_per_second", ".0f"),
            )
        )
    return align([header, *rows])
