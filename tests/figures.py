"""The suites' figures (jobs churned, faults injected by kind, operator kills, nodes lost,
inputs tried, invariant checks), shown in a section of their own at the end of the run.

A scenario's ``print`` is captured by pytest and shown only when it fails, so ``make test``
(``-q``, no ``-s``) would hide the figures of every passing scenario. ``report`` prints the
line (seen at once under ``-s``, as ``make soak`` runs) and keeps it for the summary, which
this module, loaded as a plugin by ``tests/conftest.py``, writes whatever the capture mode.
"""

from __future__ import annotations

import pytest

_LINES: list[str] = []


def report(line: str) -> None:
    """Print one figures line now and again in the run's ``figures`` section."""
    print(line)
    _LINES.append(line.strip())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _LINES:
        terminalreporter.section("figures")
        for line in _LINES:
            terminalreporter.write_line(line)
