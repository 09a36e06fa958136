"""The committed benchmark results keep the shape that issue #14 and the README promise.

Benchmarks are not tests: nothing here times anything or judges a figure. It checks that
``bench/results/latest.json`` (what the README's performance section shows) holds every
required figure, as a number or as null with the reason beside it, that its goals table
agrees with its figures, and that the bench's entry point still imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"

REQUIRED = {
    "p1": ["jobs", "pods_per_s", "ratio_to_raw_client", "peer"],
    "p2": ["requests_per_job", "ratio_to_minimum"],
    "p3": ["create_to_pods_p99_s", "create_to_running_p99_s", "failure_to_replacement_s"],
    "p4": ["rss_mib_at_max_jobs", "cpu_s_per_job"],
    "p5": [
        "step_time_ratio_to_plain_ddp",
        "kill_to_training_s",
        "scale_to_training_s",
        "checkpoint_save_s",
    ],
}


def latest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / "latest.json").read_text())
    return data


def test_latest_holds_every_required_figure_or_says_why_not() -> None:
    result = latest()
    assert result["machine"]["cpus"] >= 1 and result["machine"]["hostname"]
    assert result["control_plane"] in ("embedded", "real")
    for section, keys in REQUIRED.items():
        for key in keys:
            assert key in result[section], f"{section}.{key} missing"
            value = result[section][key]
            if value is None:
                assert result[section].get(f"{key}_why"), f"{section}.{key} is null without why"
            else:
                assert isinstance(value, int | float), f"{section}.{key} = {value!r}"


def test_goal_rows_quote_the_figures_they_judge() -> None:
    result = latest()
    assert result["goals"], "no goals table"
    for row in result["goals"]:
        section, key = row["figure"].split(".")
        assert row["value"] == result[section].get(key), row
        assert row["status"] in ("PASS", "MISS", "n/a"), row
        if row["status"] == "n/a":
            assert row.get("why"), row


def test_the_chart_and_the_table_are_committed_beside_the_json() -> None:
    result = latest()
    assert result["chart"] == "latest.png"
    assert (RESULTS / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (RESULTS / "latest.md").read_text()
    for row in result["goals"]:
        assert row["goal"] in table


def test_the_runner_imports_and_documents_its_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.run", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "--jobs" in out.stdout and "--control-plane" in out.stdout
