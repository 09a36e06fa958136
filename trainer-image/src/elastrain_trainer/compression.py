"""DDP communication hooks: fp16 / bf16 casting and PowerSGD low-rank compression.

fp16 uses torch's own hook. torch's bf16 hook refuses anything but NCCL, and torch's PowerSGD
state needs numpy (not a dependency of this image), so both are implemented here on plain
collectives; they run on gloo and NCCL alike.

PowerSGD (Vogels et al., 2019) sends, for each gradient matrix M (n x m), the factors P = M Q
(n x r) and Q = M^T P (m x r) instead of M, with an orthogonalisation of P in between, a
warm-started Q and error feedback (what compression lost this step is added to the next
gradient). Vectors and matrices too small to gain are allreduced uncompressed. The first
`start_step` steps use plain allreduce, as torch recommends, so early large gradients are exact.
"""

# No `from __future__ import annotations`: DDP inspects the hooks' `bucket` annotation and
# insists on the real dist.GradBucket class, not a string.
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)

HookFuture = torch.futures.Future[torch.Tensor]


def _done(tensor: torch.Tensor) -> HookFuture:
    fut: HookFuture = torch.futures.Future()
    fut.set_result(tensor)
    return fut


def _group(process_group: Any) -> Any:
    return process_group if process_group is not None else dist.group.WORLD


def bf16_cast_hook(process_group: Any, bucket: dist.GradBucket) -> HookFuture:
    """Allreduce the bucket in bfloat16, then write the mean back in the bucket's dtype.

    (Not named `bf16_compress_hook`: DDP rejects any hook of that name unless the backend is
    NCCL, because it assumes torch's own.)
    """
    group = _group(process_group)
    buffer = bucket.buffer()
    compressed = buffer.to(torch.bfloat16).div_(dist.get_world_size(group))
    fut = dist.all_reduce(compressed, group=group, async_op=True).get_future()

    def decompress(f: torch.futures.Future[list[torch.Tensor]]) -> torch.Tensor:
        buffer.copy_(f.value()[0])
        return buffer

    return fut.then(decompress)


@dataclass
class PowerSGDState:
    """Per-job compression state, shared by every bucket of one DDP model."""

    rank: int
    start_step: int
    seed: int
    step: int = 0
    errors: dict[int, torch.Tensor] = field(default_factory=dict)
    q_memory: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)


def _allreduce_mean(tensors: list[torch.Tensor], group: Any) -> None:
    """One allreduce for a list of tensors (flattened together), averaged, written back."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, group=group)
    flat.div_(dist.get_world_size(group))
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def powersgd_hook(state: PowerSGDState, bucket: dist.GradBucket) -> HookFuture:
    """Rank-r PowerSGD with error feedback and warm start; synchronous collectives."""
    group = dist.group.WORLD
    buffer = bucket.buffer()
    if state.step < state.start_step:
        _allreduce_mean([buffer], group)
        _advance(state, bucket)
        return _done(buffer)
    index = bucket.index()
    error = state.errors.get(index)
    if error is not None:
        buffer.add_(error)
    before = buffer.clone()
    matrices: list[tuple[int, torch.Tensor]] = []
    plain: list[torch.Tensor] = []
    for i, grad in enumerate(bucket.gradients()):
        matrix = grad.view(grad.shape[0], -1) if grad.dim() > 1 else grad
        rows, cols = (matrix.shape[0], matrix.shape[1]) if matrix.dim() == 2 else (0, 0)
        if matrix.dim() == 2 and (rows + cols) * state.rank < rows * cols:
            matrices.append((i, matrix))
        else:
            plain.append(grad)
    _allreduce_mean(plain, group)
    if matrices:
        qs = [_q_for(state, index, i, m) for i, m in matrices]
        ps = [m @ q for (_, m), q in zip(matrices, qs, strict=True)]
        _allreduce_mean(ps, group)
        ps = [torch.linalg.qr(p).Q for p in ps]
        for (_, m), p, q in zip(matrices, ps, qs, strict=True):
            q.copy_(m.t() @ p)
        _allreduce_mean(qs, group)
        for (_, m), p, q in zip(matrices, ps, qs, strict=True):
            m.copy_(p @ q.t())
    # The bucket's gradients() are views of its buffer, so `buffer` now holds the approximation.
    state.errors[index] = before - buffer
    _advance(state, bucket)
    return _done(buffer)


def _q_for(state: PowerSGDState, bucket: int, tensor: int, matrix: torch.Tensor) -> torch.Tensor:
    """Warm-started Q; the first one is random but identical on every rank (shared seed)."""
    key = (bucket, tensor)
    q = state.q_memory.get(key)
    if q is None:
        gen = torch.Generator().manual_seed(state.seed + 7919 * bucket + tensor)
        q = torch.randn(matrix.shape[1], state.rank, generator=gen).to(matrix)
        state.q_memory[key] = q
    return q


def _advance(state: PowerSGDState, bucket: dist.GradBucket) -> None:
    if bucket.is_last():
        state.step += 1


def register(
    model: DistributedDataParallel, kind: str, *, rank: int, start_step: int, seed: int
) -> None:
    """Install the hook for `kind` ('none' leaves DDP's own allreduce)."""
    if kind == "none":
        return
    if kind == "fp16":
        model.register_comm_hook(None, default_hooks.fp16_compress_hook)
    elif kind == "bf16":
        model.register_comm_hook(None, bf16_cast_hook)
    elif kind == "powersgd":
        state = PowerSGDState(rank=rank, start_step=start_step, seed=seed)
        model.register_comm_hook(state, powersgd_hook)
    else:
        raise ValueError(f"unknown compression {kind!r}")
    log.info("gradient compression: %s", kind)
