"""Elastrain trainer: elastic DDP and parameter-server training with checkpoint/resume.

Library use: write `def build(ctx: TaskContext) -> Task` and either run the image with
`--script module:build`, or end your own script with `raise SystemExit(train(build))`.
"""

from elastrain_trainer.cli import train
from elastrain_trainer.task import Task, TaskContext, TaskFactory

__all__ = ["Task", "TaskContext", "TaskFactory", "train"]
