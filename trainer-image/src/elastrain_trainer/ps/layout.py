"""Static facts of a ps job every process derives identically from the cluster spec and flags:
which shard owns which parameter, the per-push batch and the data each push ticket reads."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from elastrain_trainer.sampler import epoch_permutation


def assign_shards(sizes: dict[str, int], num_ps: int) -> dict[str, int]:
    """Greedy balance by element count: largest tensors first onto the lightest shard.

    Deterministic (ties broken by name), so workers and every ps agree without talking.
    """
    load = [0] * num_ps
    owner: dict[str, int] = {}
    for name, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        shard = min(range(num_ps), key=lambda s: (load[s], s))
        owner[name] = shard
        load[shard] += size
    return owner


@dataclass(frozen=True)
class PushPlan:
    """How `--steps` and `--batch-size` translate to asynchronous pushes.

    A global step is one push per worker of the cluster spec: each push uses B/W samples and the
    ps weights its gradient by that share (b/B), so W pushes move the model as far as one
    synchronous step of the global batch would, and `--lr` means the same in both modes.
    """

    workers: int
    global_batch: int
    steps: int
    num_samples: int
    seed: int

    @property
    def push_batch(self) -> int:
        return max(1, self.global_batch // self.workers)

    @property
    def weight(self) -> float:
        return self.push_batch / self.global_batch

    @property
    def total_pushes(self) -> int:
        return self.steps * self.workers

    @property
    def pushes_per_epoch(self) -> int:
        return max(1, self.num_samples // self.push_batch)

    def indices(self, ticket: int) -> list[int]:
        """The samples of push `ticket`: consecutive slices of each epoch's permutation."""
        epoch, pos = divmod(ticket, self.pushes_per_epoch)
        perm = epoch_permutation(self.num_samples, self.seed, epoch)
        return perm[pos * self.push_batch : (pos + 1) * self.push_batch].tolist()

    def epoch_of(self, ticket: int) -> int:
        return ticket // self.pushes_per_epoch


def evaluation_indices(num_samples: int) -> torch.Tensor:
    """A fixed evaluation set (the first samples), so first and final loss are comparable."""
    return torch.arange(min(num_samples, 1024))
