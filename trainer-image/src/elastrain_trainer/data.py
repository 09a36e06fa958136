"""Turning a rank's index list into tensors on the training device."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset
from torch.utils.data._utils.collate import default_collate

from elastrain_trainer.errors import UsageError


def fetch(
    dataset: Dataset[Any], indices: list[int] | torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `(inputs, targets)` batch for `indices`; TensorDatasets are sliced without a copy
    per sample, anything else goes through the default collate function."""
    if isinstance(dataset, TensorDataset):
        if len(dataset.tensors) != 2:
            raise UsageError("a TensorDataset task must hold exactly (inputs, targets)")
        index = indices
        if not isinstance(index, torch.Tensor):
            index = torch.tensor(index, dtype=torch.long)
        inputs, targets = (t[index] for t in dataset.tensors)
    else:
        keys = indices.tolist() if isinstance(indices, torch.Tensor) else indices
        batch = default_collate([dataset[i] for i in keys])
        if not isinstance(batch, list | tuple) or len(batch) != 2:
            raise UsageError("data set items must be (input, target) pairs")
        inputs, targets = batch
    return inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
