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

Every rank must call ``run_grid`` with the same members, data and config: before training, the
ranks compare fingerprints of them (a hash of the member specs, the config, the snapshot steps and
the data's values), and if any rank's differ every rank raises a ``ValueError`` naming what differs.
A rank that finishes its members first waits for the slowest in the final gather for up to
``timeout`` (default 7 days; a process group's own default, 30 minutes with gloo, would make an idle
rank give up, and the launch with it, during any longer run). To call ``run_grid`` more than once
in a launch, initialise the process group yourself first (``run_grid`` then leaves it alone):
tearing a gloo group down and making another in the same processes can race, and the new one then
fails to connect.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
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


_WAIT = datetime.timedelta(days=7)


def _fingerprints(members: Sequence[MemberSpec], data: Data, config: EnsembleConfig,
                  snapshot_steps: Sequence[int]) -> dict[str, str]:
    """A short hash of each input of :func:`run_grid` that every rank must share (the data by its
    values, dtypes and shapes), for comparing them across ranks."""

    def digest(*parts: object) -> str:
        h = hashlib.sha256()
        for part in parts:
            if isinstance(part, torch.Tensor):
                t = part.detach().to("cpu").contiguous()
                h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            else:
                h.update(repr(part).encode())
        return h.hexdigest()[:16]

    if isinstance(data, Mapping):
        tensors: list[object] = [x for name in sorted(data) for x in (name, torch.as_tensor(data[name]))]
    elif isinstance(data, torch.Tensor):
        tensors = [data]
    else:
        tensors = [torch.as_tensor(x) for x in data]
    def canonical(m: MemberSpec) -> str:  # equal specs give equal text, whatever the order of their options
        fields = {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
        fields["loss_options"] = sorted(m.loss_options.items())
        return repr(sorted(fields.items()))

    return {"members": digest(*(canonical(m) for m in members)), "config": digest(config), "snapshot_steps": digest(list(snapshot_steps)),
            "data": digest(*tensors)}


def run_grid(
    members: Sequence[MemberSpec],
    data: Data,
    config: EnsembleConfig,
    progress: bool = True,
    snapshot_steps: Sequence[int] = (),
    timeout: datetime.timedelta = _WAIT,
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
    one rank raising and the others waiting for it; then the ranks compare fingerprints of their
    inputs, and raise a ``ValueError`` on every rank if they were not given the same grid (module
    docstring). ``timeout``: how long a rank that has finished waits for the others in the final
    gather (a positive ``datetime.timedelta``; the gather uses a group of its own with this timeout,
    so a process group made by the caller keeps its own for everything else).
    """
    members = list(members)
    if not isinstance(timeout, datetime.timedelta) or timeout <= datetime.timedelta(0):
        raise ValueError(f"timeout={timeout!r} must be a positive datetime.timedelta")
    import torch.distributed as dist

    if not (dist.is_available() and (dist.is_initialized() or _launched())):
        return train_ensemble(members, data, config, progress=progress, snapshot_steps=snapshot_steps)
    _checked_inputs(members, data, config, snapshot_steps, torch.device("cpu"))  # raises what train_ensemble would
    cuda = torch.device(config.device).type == "cuda"
    created = not dist.is_initialized()
    wait_group = None
    if created:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        local_config = config
        if cuda:
            local = int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1)))
            torch.cuda.set_device(local)
            local_config = dataclasses.replace(config, device=f"cuda:{local}")
        # the same grid on every rank, or a clear error on every rank (not a silently wrong gather)
        mine_fp = _fingerprints(members, data, config, snapshot_steps)
        every_fp: list = [None] * world
        dist.all_gather_object(every_fp, mine_fp)
        differ = sorted({key for fp in every_fp for key in fp if fp[key] != every_fp[0][key]})
        if differ:
            ranks = [r for r, fp in enumerate(every_fp) if fp != every_fp[0]]
            raise ValueError(f"run_grid was given a different {' and '.join(differ)} on rank(s) {ranks} than on rank 0; "
                             f"every rank must call it with the same members, data, config and snapshot_steps")
        wait_group = dist.new_group(timeout=timeout)   # the final gather may wait for the slowest rank's training
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
        dist.gather_object(payload, gathered, dst=0, group=wait_group)
        if rank != 0:
            return None
        pieces = [(pos, EnsembleResult.from_state_dict(state)) for pos, state in gathered if state is not None]  # type: ignore[union-attr]
        logger.info("gathered %d members from %d ranks", len(members), world)
        return concat_results([res for _, res in pieces], [pos for pos, _ in pieces])
    finally:
        if created:
            dist.destroy_process_group()
        elif wait_group is not None:   # the caller's group stays; the gather's own goes, on every path
            dist.destroy_process_group(wait_group)
