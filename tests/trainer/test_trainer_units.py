"""Fast, in-process tests of the trainer's pure parts: flags/env, cluster specs, sharding,
checkpoint files, ps layout, and the CLI's usage errors."""

from __future__ import annotations

import io
import json
import pickle
import threading
import zipfile
from pathlib import Path
from typing import cast

import pytest
import torch
from elastrain_trainer.checkpoint import CheckpointDir
from elastrain_trainer.cli import main
from elastrain_trainer.cluster import cluster_from_env, dist_env_from_env, has_ps_role
from elastrain_trainer.config import _OPTIONS, TrainConfig, env_name, parse_config
from elastrain_trainer.errors import EXIT_REGROUP, UsageError
from elastrain_trainer.launch import planned_departure
from elastrain_trainer.metrics import TrainerMetrics
from elastrain_trainer.ps.layout import PushPlan, assign_shards
from elastrain_trainer.ps.server import ParameterShard, handlers
from elastrain_trainer.ps.transport import (
    RemoteError,
    ShardClient,
    ShardServer,
    TransportError,
    decode,
    encode,
)
from elastrain_trainer.sampler import ElasticDistributedSampler, rank_share
from torch.utils.data import Dataset


def test_flags_win_over_env_and_env_over_defaults() -> None:
    env = {"ELASTRAIN_STEPS": "7", "ELASTRAIN_LR": "0.5", "ELASTRAIN_AMP": "true"}
    config = parse_config(["--steps", "9"], env)
    assert config.steps == 9
    assert config.lr == 0.5
    assert config.amp is True
    assert parse_config([], {}).steps == TrainConfig().steps


def test_every_flag_has_an_env_twin_that_parses() -> None:
    samples = {
        "mode": "ps",
        "model": "cnn",
        "script": "m:f",
        "optimizer": "adam",
        "compression": "powersgd",
        "backend": "gloo",
        "checkpoint-dir": "/x",
        "amp": "1",
        "samples": "3",
    }
    for opt in _OPTIONS:
        value = samples.get(opt.name, "3")
        config = parse_config([], {"ELASTRAIN_BATCH_SIZE": "2", env_name(opt.name): value})
        assert str(getattr(config, opt.name.replace("-", "_"))) in (value, "3.0", "True")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ELASTRAIN_STEPS": "many"}, "ELASTRAIN_STEPS"),
        ({"ELASTRAIN_OPTIMIZER": "lbfgs"}, "choose from"),
        ({"ELASTRAIN_BATCH_SIZE": "0"}, "--batch-size must be > 0"),
        ({"ELASTRAIN_SAMPLES": "10"}, "--samples (10) must be >= --batch-size"),
        ({"ELASTRAIN_STALENESS": "-3"}, "--staleness"),
    ],
)
def test_bad_env_values_are_usage_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config([], env)


def _ps_env(cluster: object, role: str = "worker", index: str = "0") -> dict[str, str]:
    return {
        "ELASTRAIN_CLUSTER": json.dumps(cluster),
        "ELASTRAIN_ROLE": role,
        "ELASTRAIN_INDEX": index,
    }


def test_elastrain_cluster_and_tf_config_describe_the_same_job() -> None:
    cluster = {"ps": ["p0:2222", "p1:2222"], "worker": ["w0:2222", "w1:2222"]}
    spec = cluster_from_env(_ps_env(cluster, "worker", "1"))
    tf = cluster_from_env(
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    )
    assert spec == tf
    assert spec is not None
    assert [a.host for a in spec.ps] == ["p0", "p1"]
    assert (spec.role, spec.index, spec.workers[1].port) == ("worker", 1, 2222)
    assert has_ps_role(_ps_env(cluster))
    assert not has_ps_role({})


def test_tf_config_chief_becomes_worker_zero() -> None:
    cluster = {"chief": ["c:1"], "ps": ["p:1"], "worker": ["w0:1", "w1:1"]}
    chief = cluster_from_env(
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "chief"}})}
    )
    worker = cluster_from_env(
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    )
    assert chief is not None and worker is not None
    assert chief.index == 0 and worker.index == 2 and len(worker.workers) == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ELASTRAIN_CLUSTER": "{not json", "ELASTRAIN_ROLE": "ps"}, "not valid JSON"),
        (_ps_env({"ps": ["p:1"], "worker": ["w:1"]}, "driver"), "must be ps or worker"),
        (_ps_env({"ps": ["p:1"], "worker": ["w:1"]}, "worker", "3"), "outside the 1 listed"),
        (_ps_env({"ps": ["p"], "worker": ["w:1"]}, "ps"), "is not host:port"),
        (_ps_env({"ps": [], "worker": ["w:1"]}, "worker"), "at least one ps"),
        ({"ELASTRAIN_CLUSTER": '{"ps": ["p:1"]}'}, "ELASTRAIN_ROLE is not"),
        ({"TF_CONFIG": '{"cluster": {"ps": ["p:1"]}}'}, "task.type"),
    ],
)
def test_bad_cluster_specs_are_usage_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        cluster_from_env(env)


def test_dist_env_defaults_to_a_single_process_and_checks_wiring() -> None:
    single = dist_env_from_env({})
    assert (single.rank, single.world_size, single.local_rank) == (0, 1, 0)
    plain = dist_env_from_env(
        {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    )
    assert (plain.rank, plain.local_rank, plain.distributed) == (1, 0, True)
    with pytest.raises(UsageError, match="MASTER_ADDR"):
        dist_env_from_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(UsageError, match="not a valid"):
        dist_env_from_env({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})


def test_rank_shares_cover_the_global_batch_exactly() -> None:
    for batch in (6, 7, 64):
        for world in (1, 2, 3, 5):
            shares = [rank_share(batch, world, r) for r in range(world)]
            assert sum(count for _, count in shares) == batch
            assert max(c for _, c in shares) - min(c for _, c in shares) <= 1
            assert all(shares[r][0] + shares[r][1] == shares[r + 1][0] for r in range(world - 1))


def test_global_batches_do_not_depend_on_the_world_size() -> None:
    data = cast("Dataset[int]", list(range(100)))  # a list serves as a map-style dataset

    def global_batches(world: int, epoch: int) -> list[list[int]]:
        samplers = [ElasticDistributedSampler(data, 10, world, r, seed=3) for r in range(world)]
        for s in samplers:
            s.set_position(epoch, 2)
        per_rank = [list(s) for s in samplers]
        return [[i for rank in per_rank for i in rank[b]] for b in range(len(per_rank[0]))]

    assert global_batches(2, 1) == global_batches(3, 1)
    assert len(global_batches(2, 1)) == 8  # resumed at batch 2 of 10
    assert global_batches(2, 0) != global_batches(2, 1)  # a new shuffle every epoch
    with pytest.raises(ValueError, match="smaller than the world size"):
        ElasticDistributedSampler(data, 2, 3, 0)


def test_checkpoints_are_rotated_and_a_torn_newest_file_is_skipped(tmp_path: Path) -> None:
    ckpt = CheckpointDir(tmp_path / "c", keep=2)
    assert ckpt.load_latest() is None
    for step in (10, 20, 30):
        ckpt.save(step, {"w": torch.full((2,), float(step))})
    assert ckpt.steps() == [20, 30]
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".")]
    ckpt.file_for(30).write_bytes(b"truncated")
    loaded = ckpt.load_latest()
    assert loaded is not None and loaded.step == 20
    assert torch.equal(loaded.payload["w"], torch.full((2,), 20.0))


def test_ps_shards_are_balanced_and_agree_everywhere() -> None:
    sizes = {"a": 100, "b": 90, "c": 20, "d": 10, "e": 5}
    owner = assign_shards(sizes, 2)
    load = [sum(sizes[n] for n, s in owner.items() if s == shard) for shard in (0, 1)]
    assert abs(load[0] - load[1]) <= 30
    assert owner == assign_shards(dict(reversed(sizes.items())), 2)
    plan = PushPlan(workers=2, global_batch=64, steps=10, num_samples=100, seed=0)
    assert (plan.push_batch, plan.weight, plan.total_pushes) == (32, 0.5, 20)
    first, second = plan.indices(0), plan.indices(1)
    assert len(first) == 32 and not set(first) & set(second)  # one epoch: disjoint pushes
    assert plan.epoch_of(3) == 1 and len(plan.indices(3)) == 32


def test_cli_usage_errors_exit_2_with_one_readable_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--steps", "ten"])
    assert exc.value.code == 2
    assert "invalid int value: 'ten'" in capsys.readouterr().err
    assert main(["--script", "no_such_module_xyz:build", "--metrics-port", "0"]) == 2
    assert "No module named 'no_such_module_xyz'" in capsys.readouterr().err
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"ps": ["p:1"], "worker": ["w:1"]}}')
    assert main(["--mode", "ps", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("elastrain-train: error: TF_CONFIG: task.type is missing")
    assert "Traceback" not in err


def _shard(staleness: int, workers: int = 2) -> ParameterShard:
    plan = PushPlan(workers=workers, global_batch=8, steps=5, num_samples=64, seed=1)
    config = TrainConfig(staleness=staleness, checkpoint_every=0)
    params = {"w": torch.zeros(3)}
    return ParameterShard(0, params, config, plan, None, TrainerMetrics("ps", 0))


def test_a_push_staler_than_the_bound_is_refused_over_the_wire() -> None:
    shard = _shard(staleness=1)
    listener = ShardServer(0, handlers(shard), host="127.0.0.1").start()
    client = ShardClient("127.0.0.1", listener.port)
    try:
        version, values = client.call("pull", 0)
        assert version == 0 and torch.equal(values["w"], torch.zeros(3))
        grad = {"w": torch.ones(3)}
        assert client.call("push", 0, version, grad) is True  # 0 updates since the pull
        assert client.call("push", 1, version, grad) is True  # 1: within the bound
        assert client.call("push", 1, version, grad) is False  # 2 > 1: refused, not applied
        assert shard.version == 2
        assert shard.metrics.stale_gradients._value.get() == 1
        fresh, _ = client.call("pull", 1)
        assert client.call("push", 1, fresh, grad) is True
    finally:
        client.close()
        listener.stop()


def test_the_wire_admits_tensors_and_plain_values_but_no_code() -> None:
    value = {"v": 3, "t": torch.arange(4), "l": [1.5, None, "x"]}
    back = decode(encode(value))
    assert back["v"] == 3 and back["l"] == [1.5, None, "x"]
    assert torch.equal(back["t"], torch.arange(4))
    hostile = pickle.dumps(Exploit(), protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        decode(_as_torch_file(hostile))


class Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def _as_torch_file(payload: bytes) -> bytes:
    """A torch.save zip whose data.pkl is ``payload``."""
    buffer = io.BytesIO()
    torch.save({"x": 1}, buffer)
    original = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as patched:
        for info in original.infolist():
            data = payload if info.filename.endswith("data.pkl") else original.read(info)
            patched.writestr(info, data)
    return out.getvalue()


def test_the_shard_waits_for_every_worker_and_a_replacement_counts_as_a_restart() -> None:
    shard = _shard(staleness=-1, workers=2)
    shard.join(0)
    shard.join(1)
    shard.finish(0)
    assert not shard.finished.is_set()  # worker 1 crashed: its replacement will come
    shard.join(1)  # the replacement
    shard.join(1, True)  # the same one reconnecting after this ps restarted: not a restart
    assert shard.ledger.restarts == 1
    shard.finish(1)
    assert shard.finished.is_set()


def test_a_stopping_ps_answers_503_and_stops_at_once_with_idle_connections_open() -> None:
    shard = _shard(staleness=-1)
    listener = ShardServer(0, handlers(shard), host="127.0.0.1").start()
    idle = ShardClient("127.0.0.1", listener.port)
    busy = ShardClient("127.0.0.1", listener.port)
    try:
        idle.call("join", 0)  # leaves a keep-alive connection open and idle
        busy.call("join", 1)
        stopper = threading.Thread(target=listener.stop)
        stopper.start()
        stopper.join(10)  # not IDLE_TIMEOUT_S: the idle connections end at once
        assert not stopper.is_alive()
        with pytest.raises(TransportError):
            busy.call("pull", 1)
        assert shard.version == 0
    finally:
        idle.close()
        busy.close()


def test_an_error_answer_is_a_remote_error_not_a_lost_ps() -> None:
    shard = _shard(staleness=-1)
    listener = ShardServer(0, handlers(shard), host="127.0.0.1").start()
    client = ShardClient("127.0.0.1", listener.port)
    try:
        with pytest.raises(RemoteError, match="no method"):
            client.call("no_such_method")
        with pytest.raises(RemoteError, match="KeyError"):
            client.call("push", 0, 0, {"not_w": torch.ones(3)})  # a bug, not a lost ps
        assert client.call("pull", 0)[0] == 0  # the connection is still good
    finally:
        client.close()
        listener.stop()


@pytest.mark.parametrize(
    ("codes", "planned"),
    [
        ([EXIT_REGROUP], True),
        ([EXIT_REGROUP, -15], True),  # the agent closed the other local rank
        ([EXIT_REGROUP, 143], True),
        ([143], False),  # this pod's own ranks were signalled: not a peer's departure
        ([EXIT_REGROUP, 1], False),  # a crash among them counts, as with plain torchrun
        ([-9], False),
        ([], False),
    ],
)
def test_only_a_peers_planned_departure_is_a_free_re_rendezvous(
    codes: list[int], planned: bool
) -> None:
    assert planned_departure(codes) is planned


def test_the_regroup_exit_code_comes_from_the_launcher() -> None:
    assert dist_env_from_env({}).regroup_exit is None
    assert dist_env_from_env({"ELASTRAIN_REGROUP_EXIT_CODE": "75"}).regroup_exit == 75
