"""`elastrain-train` and the library entry point `elastrain_trainer.train`.

Exit codes: 0 done, 143 checkpointed after SIGTERM (retryable), 2 usage error, 1 anything else.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from elastrain_trainer.builtin import BUILTIN
from elastrain_trainer.cluster import cluster_from_env, dist_env_from_env, has_ps_role
from elastrain_trainer.config import TrainConfig, parse_config
from elastrain_trainer.errors import EXIT_ERROR, EXIT_USAGE, UsageError
from elastrain_trainer.runtime import setup_logging
from elastrain_trainer.task import TaskFactory, load_factory

log = logging.getLogger("elastrain_trainer")


def _dispatch(config: TrainConfig, factory: TaskFactory) -> int:
    mode = config.mode
    if mode == "auto":
        mode = "ps" if has_ps_role() else "ddp"
    if mode == "ps":
        cluster = cluster_from_env()
        if cluster is None:
            raise UsageError(
                "--mode ps needs ELASTRAIN_CLUSTER + ELASTRAIN_ROLE (+ ELASTRAIN_INDEX),"
                " or TF_CONFIG,"
                " in the environment"
            )
        from elastrain_trainer.ps.run import run_ps

        return run_ps(config, factory, cluster)
    from elastrain_trainer.ddp import run_ddp

    return run_ddp(config, factory, dist_env_from_env())


def train(factory: TaskFactory | None = None, argv: Sequence[str] | None = None) -> int:
    """Run a job with the CLI's flags/env; `factory` replaces --model/--script when given.

    For user scripts: `raise SystemExit(elastrain_trainer.train(build))` gives the script the
    image's flags, elastic resume, checkpoints, metrics and exit codes.
    """
    setup_logging()
    try:
        config = parse_config(argv)
        if factory is None:
            factory = load_factory(config.script) if config.script else BUILTIN[config.model]
        return _dispatch(config, factory)
    except UsageError as exc:
        print(f"elastrain-train: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except Exception:
        log.exception("training failed")
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    return train(None, argv)


if __name__ == "__main__":
    raise SystemExit(main())
