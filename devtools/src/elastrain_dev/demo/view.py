"""The live view of the demo's jobs: a table redrawn in place on a TTY, a line per change elsewhere.

The table is rebuilt from scratch from each observation, so what is on screen is always what
the system reported last. In non-interactive mode (CI logs, ``| tee``, the tests) a redraw would
be noise, so a job gets a line only when something a reader cares about changed: its phase,
readiness, restarts or resume point at once, its training progress per tenth of the run.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

SPARK_CHARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 20
PROGRESS_BUCKETS = 10
LEGEND = "RESTARTS: pod = in the job status; proc = trainers restarted in place by torchrun"


@dataclass(frozen=True)
class JobRow:
    """What the view shows of one job, every field as read from the system (None: not yet)."""

    name: str
    phase: str
    ready: int
    desired: int
    restarts: int
    trainer_restarts: int = 0
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    losses: tuple[float, ...] = ()

    def state_key(self) -> tuple[object, ...]:
        """What, when it changes, earns a line of its own in non-interactive mode."""
        return (self.phase, self.ready, self.desired, self.restarts, self.trainer_restarts)

    def progress_bucket(self) -> int:
        """Which tenth of the run the job is in (-1 before its first reported step)."""
        if self.step is None or not self.total_steps:
            return -1
        return min(PROGRESS_BUCKETS, self.step * PROGRESS_BUCKETS // self.total_steps)


def sparkline(values: tuple[float, ...], width: int = SPARK_WIDTH) -> str:
    """The loss curve in block characters, resampled to at most ``width`` points.

    On a log scale when every value is positive: training losses fall by orders of magnitude,
    and a linear scale would show one cliff followed by a flat line.
    """
    if not values:
        return ""
    if len(values) > width:
        values = tuple(values[i * len(values) // width] for i in range(width - 1)) + values[-1:]
    if min(values) > 0:
        values = tuple(math.log10(v) for v in values)
    low, high = min(values), max(values)
    scale = (len(SPARK_CHARS) - 1) / (high - low) if high > low else 0.0
    return "".join(SPARK_CHARS[round((v - low) * scale)] for v in values)


def _step(row: JobRow) -> str:
    if row.step is None:
        return "-"
    return f"{row.step}/{row.total_steps}" if row.total_steps else str(row.step)


def _loss(row: JobRow) -> str:
    return "-" if row.loss is None else f"{row.loss:.4f}"


def restarts_text(pod: int, process: int) -> str:
    """Pod restarts (the job status) and training-process restarts (torchrun, in place)."""
    return f"{pod} pod / {process} proc"


def align(lines: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns two spaces apart (the first line is the header)."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]


def table(rows: list[JobRow]) -> list[str]:
    """The job table, one header line and one line per job."""
    header = ("JOB", "PHASE", "READY", "RESTARTS", "STEP", "LOSS", "LOSS CURVE")
    cells = [
        (
            r.name,
            r.phase,
            f"{r.ready}/{r.desired}",
            restarts_text(r.restarts, r.trainer_restarts),
            _step(r),
            _loss(r),
            sparkline(r.losses),
        )
        for r in rows
    ]
    return align([header, *cells])


def change_line(row: JobRow) -> str:
    """One self-contained line describing ``row`` for the non-interactive log."""
    parts = [
        f"{row.name}: {row.phase}",
        f"ready {row.ready}/{row.desired}",
        f"restarts {restarts_text(row.restarts, row.trainer_restarts)}",
        f"step {_step(row)}",
        f"loss {_loss(row)}",
    ]
    return ", ".join(parts)


@dataclass
class View:
    """Renders observations and the demo's own narration to ``out``.

    ``interactive`` redraws the table in place with ANSI cursor movement, keeping narration
    (what the demo did, Kubernetes events) scrolling above it; otherwise everything is appended.
    """

    out: TextIO = field(default_factory=lambda: sys.stdout)
    interactive: bool = False
    started: float = field(default_factory=time.monotonic)
    _drawn_lines: int = 0
    _last_state: dict[str, tuple[object, ...]] = field(default_factory=dict)
    _last_bucket: dict[str, int] = field(default_factory=dict)
    _last_rows: list[JobRow] = field(default_factory=list)
    _legend_shown: bool = False

    def elapsed(self) -> str:
        """``[m:ss]`` since the demo started, the prefix of every narrated line."""
        seconds = int(time.monotonic() - self.started)
        return f"[{seconds // 60}:{seconds % 60:02d}]"

    def say(self, message: str) -> None:
        """Narrate one thing that happened (above the live table, when there is one)."""
        self._erase()
        self.out.write(f"{self.elapsed()} {message}\n")
        self._draw(self._last_rows)

    def show(self, rows: list[JobRow]) -> None:
        """Show the latest observation of every job."""
        if not self._legend_shown and not self.interactive:
            self._legend_shown = True
            self.out.write(f"{self.elapsed()} {LEGEND}\n")
        self._last_rows = rows
        if self.interactive:
            self._erase()
            self._draw(rows)
            return
        for row in rows:
            state, bucket = row.state_key(), row.progress_bucket()
            if (
                self._last_state.get(row.name) != state
                or self._last_bucket.get(row.name, -1) < bucket
            ):
                self._last_state[row.name] = state
                self._last_bucket[row.name] = bucket
                self.out.write(f"{self.elapsed()} {change_line(row)}\n")
        self.out.flush()

    def finish(self) -> None:
        """Leave the last table on screen and stop redrawing it."""
        self._drawn_lines = 0
        self._last_rows = []

    def _erase(self) -> None:
        if self.interactive and self._drawn_lines:
            # Cursor to the start of the table's first line, then clear to the end of screen.
            self.out.write(f"\x1b[{self._drawn_lines}F\x1b[J")
            self._drawn_lines = 0

    def _draw(self, rows: list[JobRow]) -> None:
        if self.interactive and rows:
            # A wrapped line would throw off the cursor movement of the next redraw.
            width = shutil.get_terminal_size().columns - 1
            lines = ["", *(line[:width] for line in [*table(rows), LEGEND])]
            self.out.write("\n".join(lines) + "\n")
            self._drawn_lines = len(lines)
        self.out.flush()
