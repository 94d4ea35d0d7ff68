"""Tests of gan_lib.train.distributed: a grid trained by two gloo processes under torchrun equals the
same grid trained in one process (each member draws from its own generator, so sharding changes
nothing but float rounding of the batched products), and the shards are what the docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gan_lib.train import EnsembleConfig, EnsembleResult, MemberSpec, run_grid, shard, train_ensemble

MEMBERS = [
    MemberSpec("non_saturating", seed=1, lr_d=1e-3),
    MemberSpec("kl_hinge", seed=2, regulariser="spectral_norm", lr_g=1e-3),
    MemberSpec("wgan", seed=3, regulariser="gp", reg_weight=1.0),
    MemberSpec("lsgan", seed=4, regulariser="clip", clip=0.1),
    MemberSpec("hinge", seed=5),
]
CONFIG = EnsembleConfig(batch_size=32, n_critic=2, steps=10, width=16, log_every=5)

SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from gan_lib.train import EnsembleConfig, MemberSpec, run_grid
sys.path.insert(0, {tests!r})
from test_distributed import CONFIG, MEMBERS, data
result = run_grid(MEMBERS, data(), CONFIG, progress=False, snapshot_steps=[5])
import torch.distributed as dist
rank = int(__import__("os").environ["RANK"])
if rank == 0:
    torch.save(result.state_dict(), {out!r})
else:
    assert result is None
"""


def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(100, 2, generator=g) * torch.tensor([2.0, 0.5])


def torchrun_two_ranks(script: Path, template: str, out: Path, timeout: float) -> None:
    """Write ``template`` (formatted with this folder and ``out``) to ``script`` and run it under
    torchrun with two gloo ranks; it must succeed within ``timeout`` seconds."""
    script.write_text(textwrap.dedent(template.format(tests=str(Path(__file__).parent), out=str(out))))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_shards_are_strided():
    assert shard(7, 0, 3) == [0, 3, 6] and shard(7, 2, 3) == [2, 5] and shard(2, 2, 3) == []
    with pytest.raises(ValueError, match="rank"):
        shard(4, 3, 3)


def test_without_torchrun_it_is_train_ensemble(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    torch.set_num_threads(1)
    small = EnsembleConfig(batch_size=32, n_critic=1, steps=2, width=8, log_every=1)
    a = run_grid(MEMBERS[:2], data(), small, progress=False)
    b = train_ensemble(MEMBERS[:2], data(), small, progress=False)
    for p, q in zip([*a.generator.parameters(), *a.critic.parameters()], [*b.generator.parameters(), *b.critic.parameters()]):
        assert torch.equal(p, q)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_gloo_ranks_give_the_single_process_result(tmp_path: Path):
    out = tmp_path / "result.pt"
    torchrun_two_ranks(tmp_path / "grid.py", SCRIPT, out, timeout=120)
    # saved as tensors and plain values: torch.load's default weights_only=True reads it
    gathered = EnsembleResult.from_state_dict(torch.load(out))
    torch.set_num_threads(1)
    alone = train_ensemble(MEMBERS, data(), CONFIG, progress=False, snapshot_steps=[5])
    assert gathered.members == tuple(MEMBERS) and gathered.config == CONFIG
    for name in ("generator", "critic"):
        for p, q in zip(getattr(gathered, name).parameters(), getattr(alone, name).parameters()):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert sorted(gathered.snapshots) == [5]  # the snapshots are gathered with the members
    for p, q in zip(gathered.snapshots[5].parameters(), alone.snapshots[5].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    for u, v in zip(gathered.sn_u, alone.sn_u):
        torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(torch.from_numpy(gathered.history.g_loss), torch.from_numpy(alone.history.g_loss),
                               rtol=1e-6, atol=1e-7)
    assert list(gathered.history.step) == [5, 10]


BAD_DATA_SCRIPT = """
import os, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from gan_lib.train import run_grid
from test_distributed import CONFIG, MEMBERS, data
rank = os.environ["RANK"]
bad = data().clone()
bad[3, 1] = float("nan")
cases = {{
    # one member for two ranks, and a list of two training sets for it: rank 1 has no member
    "length": lambda: run_grid(MEMBERS[:1], [data(), data()], CONFIG, progress=False),
    # the second member's set is bad: only rank 1 trains it, and both must say it is member 1's
    "nan": lambda: run_grid(MEMBERS[:2], [data(), bad], CONFIG, progress=False),
    "empty": lambda: run_grid([], data(), CONFIG, progress=False),
    "snapshot": lambda: run_grid(MEMBERS[:1], data(), CONFIG, progress=False, snapshot_steps=[11]),
}}
for case, call in cases.items():
    try:
        call()
    except ValueError as err:
        open(os.path.join({out!r}, case + rank), "w").write(str(err))
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_bad_per_member_data_is_refused_on_every_rank_even_one_without_members(tmp_path: Path):
    # a rank without members used to skip the check and wait in the gather for a rank that had raised
    torchrun_two_ranks(tmp_path / "bad.py", BAD_DATA_SCRIPT, tmp_path, timeout=90)
    for rank in ("0", "1"):
        assert "data is a list of 2 tensors for 1 members" in (tmp_path / f"length{rank}").read_text()
        assert "data[1] must hold finite" in (tmp_path / f"nan{rank}").read_text()
        assert "members is empty" in (tmp_path / f"empty{rank}").read_text()
        assert "snapshot step" in (tmp_path / f"snapshot{rank}").read_text()


MISMATCH_SCRIPT = """
import os, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from gan_lib.train import MemberSpec, run_grid
from test_distributed import CONFIG, MEMBERS, data
rank = int(os.environ["RANK"])
cases = {{
    # each rank told a different seed for its second member: the gather would mix two grids
    "members": lambda: run_grid([MEMBERS[0], MemberSpec("hinge", seed=10 + rank)], data(), CONFIG, progress=False),
    "data": lambda: run_grid(MEMBERS[:2], data() + rank, CONFIG, progress=False),
}}
case = os.environ["GRID_CASE"]   # one case per launch: a group torn down and made again in the same processes can race in gloo
try:
    cases[case]()
except ValueError as err:
    open(os.path.join({out!r}, case + str(rank)), "w").write(str(err))
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
@pytest.mark.parametrize("case", ["members", "data"])
def test_ranks_given_different_grids_are_refused_on_every_rank(tmp_path: Path, monkeypatch, case: str):
    monkeypatch.setenv("GRID_CASE", case)
    torchrun_two_ranks(tmp_path / "mismatch.py", MISMATCH_SCRIPT, tmp_path, timeout=90)
    for rank in ("0", "1"):
        text = (tmp_path / f"{case}{rank}").read_text()
        assert f"run_grid was given a different {case} on rank(s) [1] than on rank 0" in text


IDLE_SCRIPT = """
import datetime, sys, torch
import torch.distributed.distributed_c10d as c10d
torch.set_num_threads(1)
c10d.default_pg_timeout = datetime.timedelta(seconds=3)   # stands in for gloo's 30 minutes
from gan_lib.train import EnsembleConfig, MemberSpec, run_grid
sys.path.insert(0, {tests!r})
from test_distributed import data
# one member for two ranks: rank 1 has nothing to train and waits in the gather for rank 0's run
cfg = EnsembleConfig(batch_size=32, n_critic=5, steps=1500, width=16, log_every=1500)
result = run_grid([MemberSpec("hinge", seed=0)], data(), cfg, progress=False)
if result is not None:
    open({out!r}, "w").write(str(len(result)))
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_an_idle_rank_waits_past_the_process_groups_default_timeout(tmp_path: Path):
    out = tmp_path / "members.txt"
    torchrun_two_ranks(tmp_path / "idle.py", IDLE_SCRIPT, out, timeout=180)
    assert out.read_text() == "1"


def test_the_wait_must_be_a_positive_timedelta():
    import datetime

    for bad in (0, datetime.timedelta(0), datetime.timedelta(seconds=-1), "1h"):
        with pytest.raises(ValueError, match="must be a positive datetime.timedelta"):
            run_grid(MEMBERS[:1], data(), CONFIG, progress=False, timeout=bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_a_cuda_config_without_cuda_is_refused_before_any_process_group(monkeypatch):
    # under torchrun it used to reach init_process_group("nccl") and fail with torch's NCCL message
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = EnsembleConfig(batch_size=32, n_critic=2, steps=2, width=8, device="cuda")
    for call in (run_grid, train_ensemble):
        with pytest.raises(ValueError, match="sees no CUDA device"):
            call(MEMBERS[:1], data(), cfg, progress=False)
