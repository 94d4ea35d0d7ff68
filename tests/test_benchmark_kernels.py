"""``benchmarks/ensemble_kernels.py``: its kernel count against what the ensemble's structure predicts,
and the script as a user runs it."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import ensemble as bench  # noqa: E402
import ensemble_kernels as kernels  # noqa: E402


def test_each_extra_member_adds_only_its_own_noise_draws():
    # everything else is batched over the members: one more seed per loss (8 more members) adds, per
    # generator step, one normal_ draw per member (the noise of the 5 critic steps and the generator
    # step in one call), and nothing reads a value back from the device (no _local_scalar_dense)
    torch.set_num_threads(1)
    x = bench.training_data()
    one, two = (kernels.kernels_per_step(bench.grid(s), x, 2) for s in (1, 2))
    assert two - one == len(bench.LOSSES)
    ops = kernels.ops_per_step(bench.grid(1), x, 2)
    assert ops["aten.normal_.default"] == len(bench.LOSSES)
    assert "aten._local_scalar_dense.default" not in ops  # a device-to-host read: on a GPU, a wait
    alone = kernels.kernels_per_step(bench.grid(1)[:1], x, 2)
    assert 0 < alone < one  # the 8 loss groups cost kernels of their own


def test_script_writes_its_record(tmp_path):
    out = tmp_path / "the kernels.json"  # a space: the recorded command must quote it
    proc = subprocess.run([sys.executable, str(BENCH / "ensemble_kernels.py"), "--seeds", "1", "--steps", "2",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(out.read_text())
    assert shlex.split(record["command"])[-2:] == ["--out", str(out)]  # runs again as written
    assert record["members"] == len(bench.LOSSES) and set(record["alone"]) == set(bench.LOSSES)
    mean_alone = sum(record["alone"].values()) / len(record["alone"])
    assert abs(record["projected_speedup"] - record["members"] * mean_alone / record["ensemble"]) < 1e-9
    ops = record["ensemble_ops"]
    # views launch nothing and are left out; operators whose names merely contain a view's name
    # (cat contains "t.default", index_select "select") are kernels and are counted
    assert not {"aten.view.default", "aten.t.default", "aten.transpose.int", "aten.select.int",
                "aten.slice.Tensor", "aten.split_with_sizes.default", "aten.detach.default"} & set(ops)
    assert ops["aten.cat.default"] > 0 and ops["aten.bmm.default"] > 0
    one = record["one_loss"]  # the same members with one loss: fewer groups, fewer kernels
    assert one["loss"] == bench.LOSSES[0] and record["alone"][one["loss"]] < one["ensemble"] < record["ensemble"]
    assert abs(one["projected_speedup"] - record["members"] * record["alone"][one["loss"]] / one["ensemble"]) < 1e-9
    bad = subprocess.run([sys.executable, str(BENCH / "ensemble_kernels.py"), "--steps", "3"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--steps=3 must be an even number >= 2" in bad.stderr


def test_unwritable_out_is_refused_before_counting(tmp_path):
    (tmp_path / "file.txt").write_text("")
    proc = subprocess.run([sys.executable, str(BENCH / "ensemble_kernels.py"), "--out", str(tmp_path / "file.txt" / "k.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr and "kernels per" not in proc.stdout
