"""The demo driver's pieces that need no sandbox: manifests, parsing, rendering, process control.

The end-to-end run is ``test_demo.py``; these pin down the parts whose failure there would be
hard to read (a manifest the API rejects, a scrape parsed wrong, a fault aimed at the launcher
instead of the trainer, a process left running).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from elastrain.api.parse import parse_training_job
from elastrain_dev.demo import cli, fault, jobs, procs, progress, report
from elastrain_dev.demo.target import Target, TargetError
from elastrain_dev.demo.view import JobRow, View, sparkline, table
from elastrain_dev.demo.workspace import Workspace
from elastrain_trainer.config import build_parser

REPO = Path(__file__).resolve().parents[2]


def test_demo_manifests_are_valid_jobs_with_parsable_trainer_flags() -> None:
    demo_jobs = jobs.load(REPO / "examples" / "demo")
    assert [j.name for j in demo_jobs] == ["demo-ddp", "demo-ps"]
    for job in demo_jobs:
        parsed = parse_training_job(job.obj)
        for spec in parsed.spec.replica_specs.values():
            for container in spec.template["spec"]["containers"]:
                args = build_parser().parse_args(container["args"])
                assert args.steps == job.total_steps
    ddp, ps = demo_jobs
    assert not ddp.is_ps and ps.is_ps
    assert ddp.description == "DDP: 2 workers"
    assert ps.description == "parameter server: 1 ps + 2 workers"
    # The fault needs a checkpoint before it fires and a second worker to hit.
    ddp_args = build_parser().parse_args(
        ddp.obj["spec"]["replicaSpecs"]["worker"]["template"]["spec"]["containers"][0]["args"]
    )
    assert ddp_args.checkpoint_dir and 0 < ddp_args.checkpoint_every < ddp_args.steps * 0.4
    assert ddp.replicas["worker"] >= 2


def test_with_image_replaces_only_trainer_images() -> None:
    job = jobs.load(REPO / "examples" / "demo")[1]
    changed = job.with_image("registry.example.com/team/trainer:dev")
    images = [
        c["image"]
        for spec in changed["spec"]["replicaSpecs"].values()
        for c in spec["template"]["spec"]["containers"]
    ]
    assert images == ["registry.example.com/team/trainer:dev"] * 2
    assert job.obj["spec"]["replicaSpecs"]["ps"]["template"]["spec"]["containers"][0][
        "image"
    ].endswith("elastrain/trainer:0.1.0")


def test_total_steps_from_flag_forms_and_env() -> None:
    base = yaml.safe_load((REPO / "examples" / "demo" / "ddp.yaml").read_text())
    container = base["spec"]["replicaSpecs"]["worker"]["template"]["spec"]["containers"][0]
    container["args"] = ["--steps=77"]
    assert jobs.DemoJob(Path("x"), base).total_steps == 77
    container["args"] = []
    container["env"] = [{"name": "ELASTRAIN_STEPS", "value": "12"}]
    assert jobs.DemoJob(Path("x"), base).total_steps == 12
    container["env"] = []
    assert jobs.DemoJob(Path("x"), base).total_steps is None


SCRAPE = """\
# HELP elastrain_trainer_step Global optimizer step reached
# TYPE elastrain_trainer_step gauge
elastrain_trainer_step{rank="1",role="worker"} 120.0
elastrain_trainer_step{rank="0",role="worker"} 121.0
# TYPE elastrain_trainer_loss gauge
elastrain_trainer_loss{rank="1",role="worker"} 0.5
elastrain_trainer_loss{rank="0",role="worker"} 0.25
# TYPE elastrain_trainer_restarts gauge
elastrain_trainer_restarts{rank="0",role="worker"} 1.0
elastrain_trainer_restarts{rank="1",role="worker"} 1.0
# TYPE elastrain_trainer_last_checkpoint_step gauge
elastrain_trainer_last_checkpoint_step{rank="0",role="worker"} 80.0
elastrain_trainer_last_checkpoint_step{rank="1",role="worker"} 80.0
# TYPE elastrain_trainer_world_size gauge
elastrain_trainer_world_size{rank="0",role="worker"} 2.0
elastrain_trainer_world_size{rank="1",role="worker"} 2.0
"""


def test_progress_parse_takes_the_lowest_worker_rank() -> None:
    got = progress.parse(SCRAPE)
    assert got == progress.Progress(
        rank=0, step=121, loss=0.25, restarts=1, last_checkpoint_step=80, world_size=2
    )


def test_progress_parse_ignores_ps_and_unstarted_ranks() -> None:
    ps_only = SCRAPE.replace('role="worker"', 'role="ps"')
    assert progress.parse(ps_only) is None
    unstarted = SCRAPE.replace("120.0", "0.0").replace("121.0", "0.0")
    assert progress.parse(unstarted) is None


def test_metrics_port_comes_from_the_named_container_port() -> None:
    pod = {"spec": {"containers": [{"ports": [{"name": "metrics", "containerPort": 9191}]}]}}
    assert progress.metrics_port(pod) == 9191
    assert progress.metrics_port({"spec": {"containers": [{}]}}) == progress.DEFAULT_METRICS_PORT


def test_summary_line_is_the_last_json_summary() -> None:
    summary = {"steps": 400, "first_loss": 0.7, "final_loss": 0.01, "restarts": 1}
    log = "\n".join(
        [
            "step 20/400 loss 0.5",
            json.dumps({"steps": 1, "first_loss": 1, "final_loss": 1}),
            json.dumps(summary),
            "{not json",
            "W1125 torchrun: shutting down",
        ]
    )
    assert report.summary_line(log) == summary
    assert report.summary_line('{"unrelated": true}\n') is None


def test_summary_line_survives_a_stderr_warning_glued_to_it() -> None:
    # Seen in a pod log: torch's RPC agent warned on stderr right after the summary was written.
    summary = {"steps": 300, "first_loss": 0.66, "final_loss": 0.0056}
    log = json.dumps(summary) + "[W1125 22:42:01 tensorpipe_agent.cpp:723] RPC agent is being\n"
    assert report.summary_line(log) == summary


def test_wall_seconds_from_status_times() -> None:
    status = {"startTime": "2026-11-25T20:00:00Z", "completionTime": "2026-11-25T20:01:05Z"}
    assert report.wall_seconds(status) == 65
    assert report.wall_seconds({"startTime": "2026-11-25T20:00:00Z"}) is None


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/python", "-u", "/venv/bin/elastrain-train", "--mode", "ddp"], True),
        (["/venv/bin/python", "-m", "elastrain_trainer.cli"], True),
        (["/venv/bin/python", "/venv/bin/torchrun", "--no-python", "elastrain-train"], False),
        (["python", "-m", "torch.distributed.run", "elastrain-train"], False),
        (["/venv/bin/python", "-m", "elastrain_sandbox"], False),
        ([], False),
    ],
)
def test_fault_targets_the_trainer_not_its_launcher(argv: list[str], expected: bool) -> None:
    assert fault.is_training_process(argv) is expected


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace stands in for the pod")
def test_remote_fault_script_kills_the_trainer_and_nothing_else(tmp_path: Path) -> None:
    """Run the in-pod script for real, in a PID namespace of its own as in a container (on the
    host it would see, and kill, every trainer on the machine)."""
    (tmp_path / "elastrain-train").write_text("import time\ntime.sleep(60)\n")
    (tmp_path / "kill.py").write_text(fault._REMOTE_SCRIPT)
    pod = (
        f"{sys.executable} {tmp_path}/elastrain-train & trainer=$!; "
        f"sleep 60 & bystander=$!; "
        # Poll until the background shell has exec'd into the trainer (a condition, no sleep).
        f"until grep -q elastrain-train /proc/$trainer/cmdline; do :; done; "
        f"{sys.executable} {tmp_path}/kill.py; "
        "wait $trainer; echo trainer-exit=$?; "
        "kill -0 $bystander && echo bystander-alive; kill $bystander"
    )
    out = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", pod],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out[0].isdigit(), out  # the pid (inside the namespace) it killed
    assert "trainer-exit=137" in out
    assert "bystander-alive" in out


def test_sparkline_follows_the_values() -> None:
    assert sparkline(()) == ""
    line = sparkline((1.0, 0.5, 0.1, 0.01))
    assert len(line) == 4
    assert line[0] == "█" and line[-1] == "▁"
    assert list(line) == sorted(line, reverse=True)
    assert len(sparkline(tuple(float(i) for i in range(100)))) == 20
    # Log scale: a loss falling by decades shows as steady steps, not one cliff then flat.
    assert sparkline((1.0, 0.1, 0.01, 0.001)) == "█▆▃▁"


def _row(**kw: object) -> JobRow:
    values: dict[str, object] = {
        "name": "demo-ddp",
        "phase": "Running",
        "ready": 2,
        "desired": 2,
        "restarts": 0,
        "step": 10,
        "total_steps": 400,
        "loss": 0.5,
    }
    values.update(kw)
    return JobRow(**values)  # type: ignore[arg-type]


def test_non_interactive_view_prints_a_line_per_change_only() -> None:
    out = io.StringIO()
    view = View(out=out, interactive=False)
    view.show([_row()])
    view.show([_row(step=11, loss=0.49)])  # same tenth of the run, nothing else changed
    view.show([_row(step=41, loss=0.3)])  # next tenth
    view.show([_row(step=42, trainer_restarts=1)])  # restart
    view.show([_row(step=400, phase="Succeeded", ready=0)])
    lines = out.getvalue().splitlines()
    assert "RESTARTS: pod = " in lines.pop(0)  # the legend, once
    assert len(lines) == 4, lines
    assert "restarts 0 pod / 1 proc" in lines[2]
    assert "Succeeded" in lines[3] and "step 400/400" in lines[3]
    assert "\x1b[" not in out.getvalue()


def test_interactive_view_redraws_the_table_in_place() -> None:
    out = io.StringIO()
    view = View(out=out, interactive=True)
    view.show([_row()])
    view.say("something happened")
    view.show([_row(step=20)])
    text = out.getvalue()
    # Each redraw moves the cursor back over the previous table (blank, header, row, legend).
    assert text.count("\x1b[4F\x1b[J") == 2
    assert "something happened" in text
    assert "20/400" in table([_row(step=20)])[1]


def _sleeper(tmp_path: Path, name: str) -> procs.Background:
    return procs.spawn(
        name,
        [sys.executable, "-c", "import time; time.sleep(120)"],
        tmp_path / f"{name}.log",
        os.environ,
    )


def test_processes_are_recorded_and_stopped(tmp_path: Path) -> None:
    started = [_sleeper(tmp_path, "one"), _sleeper(tmp_path, "two")]
    pids = tmp_path / "pids.json"
    procs.save(pids, started)
    loaded = procs.load(pids)
    assert loaded == started and all(p.alive() for p in loaded)
    for process in loaded:
        assert procs.stop(process) is False  # SIGTERM was enough
        assert not process.alive()
    assert procs.load(tmp_path / "absent.json") == []


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = procs.spawn(
        "stubborn",
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(120)",
        ],
        tmp_path / "stubborn.log",
        os.environ,
    )
    procs.wait_until(
        "the SIGTERM handler",
        lambda: "ready" in (tmp_path / "stubborn.log").read_text(),
        [stubborn],
        30,
    )
    assert procs.stop(stubborn, grace=0.5) is True
    assert not stubborn.alive()


def test_a_reused_pid_is_not_mistaken_for_the_recorded_process(tmp_path: Path) -> None:
    process = _sleeper(tmp_path, "sleeper")
    try:
        impostor = procs.Background(process.name, process.pid, process.start_time + 1, "")
        assert not impostor.alive()
        assert procs.stop(impostor) is False
        assert process.alive()
    finally:
        procs.stop(process)


def test_wait_until_names_the_log_of_a_process_that_died(tmp_path: Path) -> None:
    dead = procs.spawn(
        "crasher", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "c.log", os.environ
    )
    with pytest.raises(procs.ProcessFailed, match=r"crasher exited .*c\.log"):
        procs.wait_until("never", lambda: False, [dead], timeout=30)


def test_reset_removes_only_the_demos_own_files(tmp_path: Path) -> None:
    ws = Workspace(REPO, tmp_path)
    (tmp_path / "keep-me.txt").write_text("user file")
    ws.sandbox_state.mkdir()
    (ws.sandbox_state / "state").write_text("x")
    ws.operator_log.write_text("old log")
    ws.reset()
    assert (tmp_path / "keep-me.txt").exists()
    assert not ws.sandbox_state.exists() and not ws.operator_log.exists()


def test_latest_pod_logs_picks_the_newest_restart_of_each_pod(tmp_path: Path) -> None:
    ws = Workspace(REPO, tmp_path)
    for pod, runs in (("demo-ddp-worker-0", (0,)), ("demo-ddp-worker-1", (0, 2, 10))):
        for run in runs:
            path = ws.pod_logs / "default" / pod / "trainer" / f"{run}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    (ws.pod_logs / "default" / "demo-ps-ps-0" / "trainer").mkdir(parents=True)
    got = [
        p.relative_to(ws.pod_logs / "default") for p in ws.latest_pod_logs("default", "demo-ddp-")
    ]
    assert got == [
        Path("demo-ddp-worker-0/trainer/0.log"),
        Path("demo-ddp-worker-1/trainer/10.log"),
    ]


def test_job_result_counts_restarts_from_metrics_and_summaries() -> None:
    result = report.JobResult("demo-ddp", "DDP: 2 workers", "Succeeded", 0, 60.0)
    assert (result.trainer_restarts, result.resumed_from_step) == (0, 0)
    result.observed_trainer_restarts = 1  # rank 1's gauge; rank 0's summary counts none
    result.worker_summaries["demo-ddp-worker-0"] = {"restarts": 0, "resumed_from_step": 120}
    assert (result.trainer_restarts, result.resumed_from_step) == (1, 120)
    result.worker_summaries["demo-ddp-worker-1"] = {"restarts": 2, "resumed_from_step": 150}
    assert (result.trainer_restarts, result.resumed_from_step) == (2, 150)
    assert "0 pod / 2 proc" in report.table([result])[1]


def test_stop_ends_what_a_kept_run_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = [_sleeper(tmp_path, "sandbox"), _sleeper(tmp_path, "operator")]
    procs.save(tmp_path / "pids.json", kept)
    assert cli.main(["--stop", "--demo-dir", str(tmp_path)]) == 0
    assert not any(p.alive() for p in kept)
    assert not (tmp_path / "pids.json").exists()
    out = capsys.readouterr().out
    assert out.index("stopped the operator") < out.index("stopped the sandbox")
    assert cli.main(["--stop", "--demo-dir", str(tmp_path)]) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_a_real_cluster_needs_image_and_kubeconfig(tmp_path: Path) -> None:
    ws = Workspace(REPO, tmp_path)
    # KUBECONFIG alone (set all day for many users) never sends the demo to that cluster.
    sandbox = Target.from_env(ws, {"KUBECONFIG": "/home/me/.kube/prod"}, "default")
    assert sandbox.sandbox and sandbox.kubeconfig == ws.kubeconfig
    cluster = Target.from_env(ws, {"KUBECONFIG": "/k", "IMAGE": "r.example/t:1"}, "ml")
    assert not cluster.sandbox and (cluster.kubeconfig, cluster.namespace) == (Path("/k"), "ml")
    with pytest.raises(TargetError, match="KUBECONFIG"):
        Target.from_env(ws, {"IMAGE": "r.example/t:1"}, "default")
