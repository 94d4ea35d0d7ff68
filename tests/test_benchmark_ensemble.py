"""``benchmarks/ensemble.py``: its FLOP count against torch's own counter, and the script as a user runs it.

The benchmark's GFLOP/s (and so its fraction of the matmul peak) is its hand-derived count of the
matrix-product FLOPs divided by the time; here that count is checked against
``torch.utils.flop_counter.FlopCounterMode``, which counts the FLOPs of every matrix product the
training actually dispatches.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import stat
import subprocess
import time
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gan_lib.train import EnsembleConfig, train_ensemble
from script_runs import ctrl_c, start

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ensemble.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_ensemble", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("steps", [1, 21])  # 21: past the epoch's short last batch (5000 = 19 x 256 + 136) into the next epoch
def test_matmul_flop_count_matches_torchs_counter(steps):
    bench = load_script()
    members = bench.grid(1)[:2]  # spectral norm, as in the benchmark
    cfg = EnsembleConfig(batch_size=bench.BATCH, n_critic=bench.N_CRITIC, optimiser="rmsprop", steps=steps,
                         width=bench.WIDTH, depth=bench.DEPTH, z_dim=bench.Z_DIM, log_every=steps)
    x = bench.training_data()
    with FlopCounterMode(display=False) as counter:
        train_ensemble(members, x, cfg, progress=False)
    counted = counter.get_total_flops()
    ours = len(members) * bench.matmul_flops(steps, bench.N_POINTS)
    # ours leaves out only the spectral norm's matrix-vector products (and its 15 power iterations
    # at the start): below torch's count, by less than 1 %
    assert ours < counted
    assert (counted - ours) / counted < 0.01, (ours, counted)


def run_script(*args: str, **kwargs) -> subprocess.Popen:
    return start(SCRIPT, *args, **kwargs)


def test_quick_run_writes_a_complete_record(tmp_path):
    out = tmp_path / "deep dir" / "run.json"  # a space: the recorded command must quote it
    env = {k: v for k, v in os.environ.items() if k != "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"}
    env["NVIDIA_TF32_OVERRIDE"] = "0"
    proc = run_script("--quick", "--no-plain", "--threads", "1", "--pairs", "1", "--steps", "1", "--out", str(out),
                      env=env)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["grid"]["seeds"] == 1
    assert shlex.split(record["command"])[-2:] == ["--out", str(out)]  # runs again as written
    # the float32 product settings, with the environment's TF32 switches as the script saw them
    assert record["float32_matmul"]["precision"] == "highest" and record["float32_matmul"]["cuda_allow_tf32"] is False
    assert record["float32_matmul"]["env"] == {"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": None, "NVIDIA_TF32_OVERRIDE": "0"}
    head = subprocess.run(["git", "-C", str(SCRIPT.parents[1]), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["source"].split(" ")[0] == (head or record["source"].split(" ")[0])  # the checkout's commit
    summary = record["summary"]["by_threads"]["1"]["wall"]
    assert summary["speedup_median"] > 0 and 0 < summary["fraction_of_bmm_peak"]
    assert len(record["pairs"]) == 1
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in out.parent.iterdir()] == ["run.json"]  # no temporary file left beside it
    assert f"wrote {out}" in stdout


def test_ctrl_c_leaves_no_file(tmp_path):
    out = tmp_path / "run.json"
    proc = run_script("--quick", "--threads", "1", "--pairs", "50", "--out", str(out))
    deadline = time.monotonic() + 120
    line = ""
    while "malloc" not in line and time.monotonic() < deadline:  # started: the first line is printed
        line = proc.stdout.readline()
    stderr = ctrl_c(proc, after=1.0)
    assert proc.returncode == 130, stderr
    assert "interrupted; no result file was written" in stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds=0 must be >= 1"),  # 0 used to be taken for the default
    (["--pairs", "0", "--quick"], "--pairs=0 must be >= 1"),
    (["--threads", "1,1"], "names a thread count twice"),
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{tmp}/file.txt/run.json"], "is not a folder"),
])
def test_bad_arguments_are_refused_before_any_measuring(tmp_path, args, message):
    (tmp_path / "file.txt").write_text("")
    proc = run_script(*[a.format(tmp=tmp_path) for a in args])
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and message in stderr and stdout == "", stderr  # nothing measured
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_float32_matmul_settings_record_what_torch_refuses_to_read(monkeypatch):
    """torch raises when asked for its float32 precision after the older and newer TF32 switches were
    mixed; the record then says so instead of losing the finished measurement."""
    bench = load_script()
    assert bench.float32_matmul_settings()["precision"] in ("highest", "high", "medium")

    def refuse() -> str:
        raise RuntimeError("mixed TF32 settings")

    monkeypatch.setattr(torch, "get_float32_matmul_precision", refuse)
    settings = bench.float32_matmul_settings()
    assert settings["precision"] == "unreadable: mixed TF32 settings"
    assert isinstance(settings["cuda_allow_tf32"], bool)


def test_a_compiled_record_is_compared_only_with_an_uncompiled_one_of_the_same_gpu_and_grid():
    bench = load_script()

    def rec(name, compiled, seeds=5, members=40):
        return {"device_name": name, "grid": {"seeds": seeds, "width": 100, "compile_losses": compiled},
                "summary": {"members": members}}

    h200, h100 = rec("H200", False), rec("H100", False)
    assert bench.compiled_and_eager([h200, rec("H200", True)]) == (rec("H200", True), h200)
    # the latest uncompiled record is of another GPU, or another grid: the earlier one of the same is taken
    assert bench.compiled_and_eager([h200, h100, rec("H200", True)])[1] is h200
    assert bench.compiled_and_eager([rec("H200", False, seeds=25, members=200), rec("H200", True)]) is None
    assert bench.compiled_and_eager([h200, h100]) is None
    assert bench.compiled_and_eager([]) is None


def test_source_revision_names_the_commit_and_uncommitted_changes(tmp_path):
    bench = load_script()
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    assert bench.source_revision(tmp_path).startswith("unknown: git rev-parse HEAD failed")  # not a checkout
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert len(head) == 40 and bench.source_revision(tmp_path) == head
    (tmp_path / "new.txt").write_text("untracked files are not the benchmark's code")
    assert bench.source_revision(tmp_path) == head
    (tmp_path / "a.txt").write_text("2")
    assert bench.source_revision(tmp_path) == head + " + uncommitted changes"
