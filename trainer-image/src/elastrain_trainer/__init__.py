"""Elastrain trainer: elastic DDP and parameter-server training with checkpoint/resume."""
