"""World-size-invariant sharding: the global batch sequence is fixed, ranks split each batch.

torch's DistributedSampler gives each rank a strided 1/W of an epoch; when W changes mid-epoch
the shards move and "where was I" has no meaning. Here the epoch permutation is cut into global
batches first (seeded exactly like DistributedSampler: `seed + epoch`), and each rank takes a
contiguous slice of every global batch. Consequences that elasticity needs:
- the data seen at global step s does not depend on the world size, so a resume at 3 ranks from a
  checkpoint written at 2 continues the same sequence, and the position is just (epoch, batch);
- per-rank shares differ by at most one sample when W does not divide the batch; the trainer
  weights each rank's mean loss by its share, so the update is the exact global-batch mean.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler


def rank_share(global_batch: int, world_size: int, rank: int) -> tuple[int, int]:
    """(offset, count) of `rank`'s slice of a global batch; counts differ by at most one."""
    base, extra = divmod(global_batch, world_size)
    count = base + (1 if rank < extra else 0)
    offset = rank * base + min(rank, extra)
    return offset, count


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of one epoch (same recipe as DistributedSampler)."""
    gen = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(num_samples, generator=gen)


class ElasticDistributedSampler(DistributedSampler[int]):
    """Yields this rank's index list for each global batch of the epoch, from `start_batch`.

    A batch sampler: use it as `DataLoader(batch_sampler=...)` or iterate it directly. The last
    partial global batch of an epoch is dropped so every rank runs the same number of steps.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        global_batch: int,
        num_replicas: int,
        rank: int,
        seed: int = 0,
        start_batch: int = 0,
    ) -> None:
        if global_batch < num_replicas:
            raise ValueError(
                f"global batch {global_batch} is smaller than the world size {num_replicas}: "
                "some ranks would get no samples"
            )
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.global_batch = global_batch
        self.num_samples_total = len(dataset) if isinstance(dataset, Sized) else 0
        self.batches_per_epoch = self.num_samples_total // global_batch
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"data set of {self.num_samples_total} is smaller than one global batch"
            )
        self.start_batch = start_batch
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def set_position(self, epoch: int, batch: int) -> None:
        """Where the next iteration starts (from a checkpoint)."""
        self.set_epoch(epoch)
        self.start_batch = batch

    def batch_indices(self, batch: int) -> list[int]:
        """This rank's slice of global batch `batch` of the current epoch."""
        return self.batch_tensor(batch).tolist()

    def batch_tensor(self, batch: int) -> torch.Tensor:
        """`batch_indices` as a tensor view: the training loop indexes with it directly."""
        if self._perm_epoch != self.epoch:
            self._perm = epoch_permutation(self.num_samples_total, self.seed, self.epoch)
            self._perm_epoch = self.epoch
        offset, count = rank_share(self.global_batch, self.num_replicas, self.rank)
        start = batch * self.global_batch + offset
        return self._perm[start : start + count]

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        for batch in range(self.start_batch, self.batches_per_epoch):
            yield self.batch_indices(batch)

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch
