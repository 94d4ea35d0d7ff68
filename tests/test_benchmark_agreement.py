"""``benchmarks/ensemble_agreement.py``: its starting weights against the hand-written reference's,
that it can fail, and the script as a user runs it."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from script_runs import ctrl_c, start  # noqa: E402
from test_ensemble import mlp_from  # the plain-PyTorch reference's initialisation (tests/test_ensemble.py)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import ensemble_agreement as agree  # noqa: E402

from gan_lib.train import EnsembleConfig, train_ensemble  # noqa: E402


def test_start_is_the_reference_loops_start():
    # the distance travelled is measured from these weights: they must be the ones training starts from
    cfg = EnsembleConfig(width=16, depth=2, z_dim=2, steps=1)
    starts = agree.initial_parameters(agree.MIXED[:3], cfg)
    for spec, start in zip(agree.MIXED[:3], starts):
        gen = torch.Generator().manual_seed(spec.seed)
        nets = [mlp_from(gen, [2, 16, 16, 2]), mlp_from(gen, [2, 16, 16, 1])]
        want = [t.detach().double() for net in nets for m in net if isinstance(m, torch.nn.Linear)
                for t in (m.weight.T, m.bias)]
        assert len(want) == len(start) == len(agree.NAMES)
        for got, ref in zip(start, want):
            torch.testing.assert_close(got.reshape(ref.shape), ref, rtol=0, atol=0)


SMALL = dict(batch_size=64, n_critic=2, width=16, depth=2, z_dim=2, steps=3, log_every=1, dtype="float64")
DATA = {"a": agree.blobs(150, 0), "b": agree.blobs(150, 1, shift=0.5)}


def test_two_members_agree_with_their_lone_runs():
    rows = agree.compare(agree.MIXED[:2], DATA, EnsembleConfig(**SMALL))
    assert [r["member"] for r in rows] == [0, 1]
    for r in rows:
        assert r["distance_moved"] > 0 and r["param_error_over_distance_moved"] < 1e-8
        assert r["loss_relative_error"] < 1e-8 and r["one_ulp_data_change_over_distance_moved"] < 1e-8


def wrong_alone(specs, data, cfg, **kw):
    """train_ensemble, except that a lone member trains with another seed: a lone run that is wrong."""
    if len(specs) == 1:
        specs = [dataclasses.replace(specs[0], seed=specs[0].seed + 100)]
    return train_ensemble(specs, data, cfg, **kw)


def test_the_measure_sees_a_wrong_lone_run(monkeypatch):
    # if "alone" trained something else (here: another seed), compare() must report it far off
    monkeypatch.setattr(agree, "train_ensemble", wrong_alone)
    for r in agree.compare(agree.MIXED[:2], DATA, EnsembleConfig(**SMALL)):
        assert r["param_error_over_distance_moved"] > 1 and r["largest_at"] in agree.NAMES


def fake_rows(*rows):
    """compare() stand-in: the given (param error, loss error, one-ulp scale[, product-rounding
    scale]) for every run (the product scale in float32 only, as compare() measures it; the param
    error may be a dict dtype -> error)."""
    def compare(specs, data, cfg):
        return [{"member": k, "loss": "x", "regulariser": "none", "dtype": cfg.dtype,
                 "param_error_over_distance_moved": row[0][cfg.dtype] if isinstance(row[0], dict) else row[0],
                 "loss_relative_error": row[1],
                 "one_ulp_data_change_over_distance_moved": row[2],
                 "product_rounding_change_over_distance_moved": (row[3] if len(row) > 3 and cfg.dtype == "float32"
                                                                 else None),
                 "distance_moved": 1.0, "largest_at": None}
                for k, row in enumerate(rows)]
    return compare


def test_wide_products_are_the_float64_products_rounded_once():
    g = torch.Generator().manual_seed(3)
    a, b, c = (torch.randn(4, 64, 64, generator=g) for _ in range(3))
    want = (a.numpy().astype(np.float64) @ b.numpy().astype(np.float64)).astype(np.float32)
    with agree.WideProducts():
        got = torch.bmm(a, b)
        got_add = torch.baddbmm(c, a, b)
        got_op = a @ b
        also64 = torch.bmm(a.double(), b.double())  # float64 products are left as they are
    assert got.dtype == torch.float32 and np.array_equal(got.numpy(), want) and np.array_equal(got_op.numpy(), want)
    np.testing.assert_array_equal(got_add.numpy(), (c.double() + a.double() @ b.double()).float().numpy())
    assert also64.dtype == torch.float64
    assert not torch.equal(torch.bmm(a, b), got)  # float32 products round along the way: the mode changes them
    # the products of autograd's backward too: d(sum(w * (a @ b)))/da = w @ b^T, rounded once
    w = torch.randn(4, 64, 64, generator=g)
    leaf = a.clone().requires_grad_(True)
    with agree.WideProducts():
        (grad,) = torch.autograd.grad((w * torch.bmm(leaf, b)).sum(), leaf)
    np.testing.assert_array_equal(grad.numpy(), (w.double() @ b.double().transpose(1, 2)).float().numpy())


def test_product_rounding_reaches_training():
    # a float32 member trained inside the mode ends elsewhere, by a rounding-sized amount
    cfg = EnsembleConfig(**{**SMALL, "dtype": "float32"})
    rows = agree.compare(agree.MIXED[:1], DATA, cfg)
    assert 0 < rows[0]["product_rounding_change_over_distance_moved"] < 1e-4
    assert agree.compare(agree.MIXED[:1], DATA, EnsembleConfig(**SMALL))[0][
        "product_rounding_change_over_distance_moved"] is None  # float64: not measured


@pytest.mark.parametrize("rows, code", [
    ([(1e-12, 1e-12, 1e-12)], 0),
    ([(1e-12, 1e-12, 1e-12), (float("nan"), 0.0, 1e-12)], 3),     # a NaN fails
    ([(1e-12, 1e-12, 1e-12), (0.5, 0.5, 0.5)], 0),                 # rounding alone moves it that far: unchecked
    ([(1e-12, 1e-12, 1e-12), (0.5, 0.0, 1e-12)], 3),               # it does not: over
    ([(1e-12, 1e-12, float("nan"))], 0),                           # a NaN scale keeps the row checked
    ([(1e-12, 1e-12, float("nan")), (1e-3, 0.0, float("nan"))], 3),
    # in float32, product rounding alone moves the second member that far: unchecked; or it does not: over
    ([(1e-12, 1e-12, 1e-12, 1e-12), ({"float64": 1e-12, "float32": 0.5}, 0.0, 1e-12, 0.5)], 0),
    ([(1e-12, 1e-12, 1e-12, 1e-12), ({"float64": 1e-12, "float32": 0.5}, 0.0, 1e-12, 1e-6)], 3),
])
def test_exit_code_and_worst(rows, code, monkeypatch, tmp_path):
    monkeypatch.setattr(agree, "compare", fake_rows(*rows))
    out = tmp_path / "r.json"
    monkeypatch.setattr(sys, "argv", ["ensemble_agreement.py", "--out", str(out)])
    assert agree.main() == code
    record = json.loads(out.read_text())
    checked = [r for r in record["rows"] if r["checked"]]
    per_dtype = any(isinstance(r[0], dict) for r in rows)  # then only float32 (RMSprop and Adam) is over
    assert record["rows_over"] == (code == 3) * (2 if per_dtype else len(agree.TOLERANCE) * 2)
    assert all(r["checked"] == (not max(r["one_ulp_data_change_over_distance_moved"],
                                        r["product_rounding_change_over_distance_moved"] or 0.0) >= 1e-4)
               for r in record["rows"] if r["dtype"] == "float32")
    if code == 0:
        assert record["worst"]["float32"] == max(r["param_error_over_distance_moved"] for r in checked
                                                 if r["dtype"] == "float32")


def test_script_writes_its_record_and_fails_a_wrong_lone_run(tmp_path, monkeypatch):
    out = tmp_path / "an agreement.json"  # a space: the recorded command must quote it
    env = {k: v for k, v in os.environ.items() if k != "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"}
    env["NVIDIA_TF32_OVERRIDE"] = "0"
    proc = subprocess.run([sys.executable, str(BENCH / "ensemble_agreement.py"), "--steps", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["rows_over"] == 0 and record["python"]
    assert shlex.split(record["command"])[-2:] == ["--out", str(out)]
    # how float32 products were computed: torch's defaults in a fresh process without torch's TF32
    # switch, and the environment's NVIDIA switch as given
    assert record["float32_matmul"] == {
        "precision": "highest", "cuda_allow_tf32": False, "cuda_fp32_precision": "none",
        "env": {"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": None, "NVIDIA_TF32_OVERRIDE": "0"}}
    assert len(record["rows"]) == 2 * len(agree.MIXED) + 2 * len(agree.FLOAT32)
    assert record["worst"]["float64"] < 1e-8 and record["worst"]["float32"] < 1e-4
    assert all(r["checked"] for r in record["rows"] if r["dtype"] == "float64")
    # lone runs that train something else (another seed) fail it: exit 3
    monkeypatch.setattr(agree, "train_ensemble", wrong_alone)
    monkeypatch.setattr(sys, "argv", ["ensemble_agreement.py", "--steps", "3"])
    assert agree.main() == 3


@pytest.mark.parametrize("args, message", [(["--steps", "1"], "--steps=1 must be >= 2"),
                                           (["--device", "meta"], "only cpu and cuda"),
                                           (["--device", "nonsense"], "not a device name")])
def test_bad_arguments_are_refused(args, message):
    proc = subprocess.run([sys.executable, str(BENCH / "ensemble_agreement.py"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_ctrl_c_leaves_no_file_and_no_traceback(tmp_path):
    out = tmp_path / "agreement.json"
    proc = start(BENCH / "ensemble_agreement.py", "--steps", "400", "--out", str(out))
    stderr = ctrl_c(proc, after=6.0)  # past the imports, into the training
    assert proc.returncode == 130, stderr
    assert "interrupted; no result file was written" in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []
