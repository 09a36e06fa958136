"""The suites' figures (jobs churned, faults injected by kind, operator kills, nodes lost,
inputs tried, invariant checks), shown in a section of their own at the end of the run.

A scenario's ``print`` is captured by pytest and shown only when it fails, so ``make test``
(``-q``, no ``-s``) would hide the figures of every passing scenario. ``report`` keeps the
line for the summary, which this module, loaded as a plugin by ``tests/conftest.py``, writes
whatever the capture mode (once: printing it too showed it twice under ``make soak``'s ``-s``).
"""

from __future__ import annotations

import pytest

_LINES: list[str] = []


def report(line: str) -> None:
    """Keep one figures line for the run's ``figures`` section."""
    _LINES.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _LINES:
        terminalreporter.section("figures")
        for line in _LINES:
            terminalreporter.write_line(line)
