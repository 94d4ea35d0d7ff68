r"""A grid of ensemble members shared out over the processes of a ``torchrun`` launch.

``run_grid(members, data, config)`` trains the same members :func:`gan_lib.train.train_ensemble`
would, but when the script runs under ``torchrun`` (``torch.distributed`` initialised from the
environment: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...) each of the ``W`` processes trains
every ``W``-th member (rank ``r`` takes members ``r, r + W, r + 2W, ...``, so a grid ordered by
loss then seed spreads each loss over the ranks), and rank 0 gathers the trained members and their
histories into one :class:`gan_lib.train.EnsembleResult` in the original order. Each member draws
every random number from its own generator (see :mod:`gan_lib.train.ensemble`), so the gathered
result is the one a single process would have produced, up to float rounding of the batched
products::

    torchrun --standalone --nproc_per_node 2 my_grid.py      # in my_grid.py: result = run_grid(...)

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment, or a world of one) it simply trains
everything in this process. The backend is ``gloo`` on the CPU and ``nccl`` when ``config.device``
is a CUDA device; with CUDA, rank ``r`` trains on ``cuda:<LOCAL_RANK>``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Mapping, Sequence

import torch

from .ensemble import Data, EnsembleConfig, EnsembleResult, MemberSpec, _checked_inputs, concat_results, train_ensemble

__all__ = ["run_grid", "shard"]

logger = logging.getLogger(__name__)


def shard(n_members: int, rank: int, world_size: int) -> list[int]:
    """Positions of the members that rank ``rank`` of ``world_size`` trains: ``rank, rank + W, ...``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
    return list(range(rank, n_members, world_size))


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def run_grid(
    members: Sequence[MemberSpec],
    data: Data,
    config: EnsembleConfig,
    progress: bool = True,
    snapshot_steps: Sequence[int] = (),
) -> EnsembleResult | None:
    """Train ``members`` as :func:`train_ensemble` does, shared out over the ranks of a ``torchrun`` launch.

    Returns the gathered :class:`EnsembleResult` (members in the order given, tensors on the CPU) on
    rank 0 and ``None`` on the other ranks; without ``torchrun``, the result of
    ``train_ensemble(members, data, config)``. ``data`` is what :func:`train_ensemble` takes (every
    rank needs all of it; a list of per-member tensors is sharded with the members). A process group
    that this function initialised is destroyed before it returns; one that was already there is
    left alone. ``snapshot_steps`` as in :func:`train_ensemble`: the snapshots are gathered too.

    Every rank checks the members and all of the data before any rank trains, so that bad input
    makes every rank raise the same error (naming the member's place in ``members``), instead of
    one rank raising and the others waiting for it.
    """
    members = list(members)
    import torch.distributed as dist

    if not (dist.is_available() and (dist.is_initialized() or _launched())):
        return train_ensemble(members, data, config, progress=progress, snapshot_steps=snapshot_steps)
    _checked_inputs(members, data, config, snapshot_steps, torch.device("cpu"))  # raises what train_ensemble would
    cuda = torch.device(config.device).type == "cuda"
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        local_config = config
        if cuda:
            local = int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1)))
            torch.cuda.set_device(local)
            local_config = dataclasses.replace(config, device=f"cuda:{local}")
        positions = shard(len(members), rank, world)
        per_member = not (isinstance(data, Mapping) or isinstance(data, torch.Tensor))
        part: EnsembleResult | None = None
        if positions:
            mine = [members[i] for i in positions]
            my_data: Data = [data[i] for i in positions] if per_member else data  # type: ignore[index]
            part = train_ensemble(mine, my_data, local_config, progress=progress and rank == 0,
                                  desc=f"rank {rank}", snapshot_steps=snapshot_steps)
            part.to("cpu")
            part.config = config
        payload = (positions, None if part is None else part.state_dict())
        gathered: list | None = [None] * world if rank == 0 else None
        dist.gather_object(payload, gathered, dst=0)
        if rank != 0:
            return None
        pieces = [(pos, EnsembleResult.from_state_dict(state)) for pos, state in gathered if state is not None]  # type: ignore[union-attr]
        logger.info("gathered %d members from %d ranks", len(members), world)
        return concat_results([res for _, res in pieces], [pos for pos, _ in pieces])
    finally:
        if created:
            dist.destroy_process_group()
