"""A real Prometheus server for tests: scrape real endpoints, evaluate real rules, query PromQL.

Asserting on our own parsing of /metrics text proves little about what a Prometheus will make
of it (label collisions with target labels, staleness, a rule that never matches). This harness
runs the real `prometheus` binary on a free loopback port with a throwaway TSDB, so a test can
point it at the endpoints it started and ask it PromQL questions, the way the chart's
dashboards and alerts will.

- Targets come from a `file_sd` JSON file the test rewrites at runtime (`set_targets`):
  Prometheus notices the rename and rescrapes without a restart; the labels of each group
  (`trainingjob`, `namespace`, `replica_type`, ...) become target labels, as the chart's
  PodMonitor relabelling makes them in a cluster.
- Scrape and rule evaluation run every second by default. A change of targets takes about 5 s
  more: Prometheus's discovery manager hands target updates to the scrapers at most every 5 s
  (not configurable in 2.42), so wait for a new target's first sample with `wait_for`'s
  default timeout or longer, never less than 15 s.
- `query` raises `PromQLError` carrying Prometheus's own message when the expression is bad, so a
  typo in a test's PromQL fails loudly instead of looking like "no data".
- `wait_for` polls a query until a predicate holds, with a deadline: never sleep to wait.

The binaries are looked up in `<repo>/.tools/bin` (where `make install` puts Debian's
prometheus 2.42), then in the directory `$ELASTRAIN_PROMETHEUS_BIN`, then on PATH; a test that
needs one skips, naming where it looked, only when it is nowhere (CI always has them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from elastrain_sandbox.ports import free_port

REPO = Path(__file__).resolve().parents[1]
TOOLS_BIN = REPO / ".tools" / "bin"
BIN_ENV = "ELASTRAIN_PROMETHEUS_BIN"
START_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 10.0

Result = dict[str, Any]  # one element of a query's data.result: {"metric": {...}, "value": [t, v]}


def find_tool(name: str) -> Path | None:
    """`prometheus` or `promtool`: .tools/bin first, then $ELASTRAIN_PROMETHEUS_BIN, then PATH."""
    candidates = [TOOLS_BIN / name]
    if os.environ.get(BIN_ENV):
        candidates.append(Path(os.environ[BIN_ENV]) / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    return Path(found) if found else None


def require_tool(name: str) -> Path:
    """The tool's path, or skip the calling test saying where it was looked for."""
    path = find_tool(name)
    if path is None:
        pytest.skip(
            f"{name} not found in {TOOLS_BIN}, ${BIN_ENV} or PATH: run `make install` "
            "(it installs Debian's prometheus binaries into .tools/bin)"
        )
    return path


def promtool_check_metrics(text: str) -> tuple[bool, str]:
    """Run `promtool check metrics` over an exposition text; (clean, promtool's output).

    promtool lints what a scrape would ingest: missing HELP, counters without `_total`, unit
    suffixes, invalid names. Its findings go to stderr with exit code 3; parse errors exit 1.
    """
    proc = subprocess.run(
        [str(require_tool("promtool")), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def promtool_check_rules(path: Path) -> tuple[bool, str]:
    """Run `promtool check rules` on a rule file; (valid, promtool's output)."""
    proc = subprocess.run(
        [str(require_tool("promtool")), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode == 0, proc.stdout + proc.stderr


def target_group(targets: Sequence[str], **labels: str) -> dict[str, Any]:
    """One file_sd entry: `host:port` targets that share `labels`."""
    return {"targets": list(targets), "labels": dict(labels)}


class PromQLError(Exception):
    """Prometheus refused a query; `error_type` (e.g. `bad_data`) and `message` are its own."""

    def __init__(self, expr: str, error_type: str, message: str) -> None:
        super().__init__(f"Prometheus refused {expr!r}: {error_type}: {message}")
        self.expr = expr
        self.error_type = error_type
        self.message = message


class Prometheus:
    """One `prometheus` process with its own config, target file, TSDB and log in `workdir`.

    Use it as a context manager (or call `start` and `stop`):

        with Prometheus(tmp_path) as prom:
            prom.set_targets([target_group(["127.0.0.1:9090"], trainingjob="ddp")])
            prom.wait_for('up{trainingjob="ddp"}', lambda r: bool(r) and value(r[0]) == 1)
    """

    def __init__(
        self,
        workdir: Path,
        *,
        rule_files: Sequence[Path] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        job_name: str = "elastrain",
    ) -> None:
        self.workdir = workdir
        self.rule_files = [Path(p) for p in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.job_name = job_name
        self.config_file = workdir / "prometheus.yml"
        self.targets_file = workdir / "targets.json"
        self.log_file = workdir / "prometheus.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The configuration it runs with: one file_sd scrape job, the rule files."""
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,  # must not exceed the interval
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": self.job_name,
                    "file_sd_configs": [
                        # Prometheus watches the file; the refresh is the fallback.
                        {"files": [str(self.targets_file)], "refresh_interval": "1s"}
                    ],
                }
            ],
        }

    def start(self) -> Prometheus:
        """Write the config (no targets yet), start the server, wait until /-/ready."""
        binary = require_tool("prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.targets_file.exists():
            self.set_targets([])
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.port = free_port()
        cmd = [
            str(binary),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",  # POST /-/reload
            "--log.level=info",
        ]
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready():
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self._proc.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"prometheus not ready after {START_TIMEOUT_S}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        """Terminate, wait, and kill if it does not go (a test must never leak a server)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    # -- targets and rules -----------------------------------------------------------------

    def set_targets(self, groups: Sequence[Mapping[str, Any]]) -> None:
        """Replace the scrape targets: a list of `target_group(...)` entries.

        Written to a temporary file and renamed, so Prometheus never reads half a file.
        """
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(list(groups), indent=1))
        tmp.replace(self.targets_file)

    def reload(self) -> None:
        """Re-read the config and rule files (POST /-/reload); raises with Prometheus's reason
        when the new configuration is refused, since it would otherwise keep the old one."""
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S):
                return
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise AssertionError(f"prometheus refused the reload: {body}") from None

    def signal_reload(self) -> None:
        """The same through SIGHUP, without the lifecycle API. It gives no answer: check
        `rules()` (or the log) to see that the new configuration took."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    # -- HTTP API --------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp:
                body: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422/503 carry a JSON error body
            raw = exc.read()
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                raise AssertionError(f"GET {url}: HTTP {exc.code}: {raw[:500]!r}") from None
        return body

    def query(self, expr: str) -> list[Result]:
        """Evaluate `expr` now (/api/v1/query). Vectors come back as their elements; a scalar
        or string result comes back as one element with no labels, so callers handle one
        shape. Raises PromQLError with Prometheus's message on a bad expression."""
        body = self._get("/api/v1/query", {"query": expr})
        if body.get("status") != "success":
            raise PromQLError(expr, str(body.get("errorType")), str(body.get("error")))
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[Result]], bool],
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> list[Result]:
        """Poll `expr` until `predicate(results)` holds; its results. At the deadline, fail
        showing the last results and every target's health (a down target is the usual cause).
        A bad expression raises at once: waiting would not fix it."""
        deadline = time.monotonic() + timeout
        while True:
            results = self.query(expr)
            if predicate(results):
                return results
            if time.monotonic() > deadline:
                health = [
                    (t.get("scrapeUrl"), t.get("health"), t.get("lastError"))
                    for t in self.targets().get("activeTargets", [])
                ]
                raise AssertionError(
                    f"timed out after {timeout}s waiting on {expr!r}; last results: {results}; "
                    f"targets: {health}"
                )
            time.sleep(interval)

    def targets(self) -> dict[str, Any]:
        """/api/v1/targets: `activeTargets` (with `labels`, `health`, `lastError`) and
        `droppedTargets`."""
        body = self._get("/api/v1/targets")
        data: dict[str, Any] = body["data"]
        return data

    def rules(self) -> list[dict[str, Any]]:
        """/api/v1/rules: the loaded rule groups (to check that a reload took effect)."""
        groups: list[dict[str, Any]] = self._get("/api/v1/rules")["data"]["groups"]
        return groups


def value(result: Result) -> float:
    """The sample value of one instant-query result."""
    return float(result["value"][1])


@contextlib.contextmanager
def running_prometheus(workdir: Path, **options: Any) -> Iterator[Prometheus]:
    """`Prometheus(workdir, **options)`, started, and stopped however the block ends."""
    prom = Prometheus(workdir, **options)
    prom.start()
    try:
        yield prom
    finally:
        prom.stop()
