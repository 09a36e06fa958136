"""Command-line flags with `ELASTRAIN_<FLAG>` environment equivalents.

Every flag can come from the environment so that a TrainingJob's pod template can set them
without rewriting the container command; a flag on the command line wins over the env value.
Values are validated here, once, so the training code can trust them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elastrain_trainer.errors import UsageError

MODES = ("auto", "ddp", "ps")
MODELS = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
COMPRESSIONS = ("none", "fp16", "bf16", "powersgd")
BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one trainer process needs to know; identical on every rank of a job."""

    mode: str = "auto"
    model: str = "mlp"
    script: str | None = None
    steps: int = 100
    batch_size: int = 64
    micro_batch: int = 0
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    compression: str = "none"
    powersgd_rank: int = 2
    powersgd_start_step: int = 10
    features: int = 16
    samples: int = 4096
    noise: float = 0.01
    seed: int = 0
    staleness: int = -1
    log_every: int = 10
    step_delay: float = 0.0
    metrics_port: int = 9090
    backend: str = "auto"
    amp: bool = False


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True)
class _Option:
    name: str
    parse: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] | None = None


_OPTIONS: tuple[_Option, ...] = (
    _Option(
        "mode",
        str,
        "ddp (allreduce), ps (parameter server) or auto: ps when the cluster "
        "spec in the environment has a ps role",
        MODES,
    ),
    _Option("model", str, "built-in model and synthetic data set", MODELS),
    _Option(
        "script",
        str,
        "user task 'module:function' or 'path/file.py:function' returning "
        "an elastrain_trainer.Task (overrides --model)",
    ),
    _Option("steps", int, "total optimizer steps of the job (global batches)"),
    _Option("batch-size", int, "global batch size, kept constant whatever the world size"),
    _Option(
        "micro-batch",
        int,
        "largest per-rank forward/backward batch; larger per-rank "
        "shares use gradient accumulation (0: no limit)",
    ),
    _Option("lr", float, "learning rate for the global batch (not scaled by world size)"),
    _Option("optimizer", str, "optimizer ('momentum' is SGD with --momentum)", OPTIMIZERS),
    _Option("momentum", float, "momentum for --optimizer momentum"),
    _Option("weight-decay", float, "weight decay for every optimizer"),
    _Option("checkpoint-dir", str, "checkpoint directory (mount a PVC or emptyDir here)"),
    _Option(
        "checkpoint-every",
        int,
        "save a checkpoint every N steps (0: only at the end and on SIGTERM)",
    ),
    _Option("keep-checkpoints", int, "how many checkpoints to keep"),
    _Option("compression", str, "DDP gradient compression hook", COMPRESSIONS),
    _Option("powersgd-rank", int, "PowerSGD approximation rank"),
    _Option("powersgd-start-step", int, "plain allreduce for this many steps before PowerSGD"),
    _Option("features", int, "input features of the built-in synthetic data"),
    _Option("samples", int, "samples in the built-in synthetic data set"),
    _Option("noise", float, "label noise of the built-in regression task"),
    _Option("seed", int, "seed of data, model init and shuffling"),
    _Option(
        "staleness",
        int,
        "ps mode: drop gradients computed on parameters more than N updates old (-1: unbounded)",
    ),
    _Option("log-every", int, "progress line every N steps (rank 0)"),
    _Option("step-delay", float, "artificial seconds of delay per step, so demos can be watched"),
    _Option("metrics-port", int, "Prometheus port (port + LOCAL_RANK per process; 0 disables)"),
    _Option("backend", str, "process-group backend (auto: nccl on GPU, gloo on CPU)", BACKENDS),
    _Option("amp", _bool, "bf16 autocast (CUDA, or CPU autocast on CPU)"),
)


def env_name(flag: str) -> str:
    """`batch-size` -> `ELASTRAIN_BATCH_SIZE`."""
    return "ELASTRAIN_" + flag.upper().replace("-", "_")


def build_parser(prog: str = "elastrain-train") -> argparse.ArgumentParser:
    """The flag parser; defaults are filled from the environment later, so --help stays clean."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Elastic DDP / parameter-server trainer. Every flag also reads "
        "ELASTRAIN_<FLAG> from the environment; the command line wins.",
    )
    for opt in _OPTIONS:
        dest = opt.name.replace("-", "_")
        if opt.parse is _bool:
            parser.add_argument(
                f"--{opt.name}",
                dest=dest,
                action="store_const",
                const=True,
                default=None,
                help=f"{opt.help} [env {env_name(opt.name)}]",
            )
            continue
        parser.add_argument(
            f"--{opt.name}",
            dest=dest,
            type=opt.parse,
            choices=opt.choices,
            default=None,
            help=f"{opt.help} [env {env_name(opt.name)}]",
        )
    return parser


def parse_config(argv: Sequence[str] | None, env: Mapping[str, str] | None = None) -> TrainConfig:
    """Flags, then env, then defaults; raises UsageError (argparse errors exit 2 themselves)."""
    environ = os.environ if env is None else env
    args = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    for opt in _OPTIONS:
        dest = opt.name.replace("-", "_")
        if args[dest] is not None:
            values[dest] = args[dest]
            continue
        raw = environ.get(env_name(opt.name))
        if raw is None or (raw == "" and opt.parse is not _bool):
            continue
        try:
            value = opt.parse(raw)
        except ValueError as exc:
            raise UsageError(f"{env_name(opt.name)}={raw!r}: {exc}") from None
        if opt.choices is not None and value not in opt.choices:
            raise UsageError(f"{env_name(opt.name)}={raw!r}: choose from {', '.join(opt.choices)}")
        values[dest] = value
    config = TrainConfig(**values)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    """Reject values that would otherwise fail deep inside training with a confusing error."""
    positive = (
        "steps",
        "batch_size",
        "samples",
        "features",
        "keep_checkpoints",
        "log_every",
        "powersgd_rank",
    )
    for name in positive:
        if getattr(config, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0")
    non_negative = (
        "micro_batch",
        "checkpoint_every",
        "step_delay",
        "weight_decay",
        "powersgd_start_step",
        "momentum",
        "noise",
    )
    for name in non_negative:
        if getattr(config, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0")
    if config.lr <= 0:
        raise UsageError("--lr must be > 0")
    if config.staleness < -1:
        raise UsageError("--staleness must be >= 0, or -1 for unbounded")
    if not 0 <= config.metrics_port <= 65535:
        raise UsageError("--metrics-port must be in 0..65535")
    if config.samples < config.batch_size:
        raise UsageError(
            f"--samples ({config.samples}) must be >= --batch-size ({config.batch_size})"
        )
    if config.script is not None and ":" not in config.script:
        raise UsageError(f"--script {config.script!r}: expected 'module:function'")
