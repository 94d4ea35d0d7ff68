"""``benchmarks/ensemble_agreement.py``: its starting weights against the hand-written reference's,
that it can fail, and the script as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_ensemble import mlp_from  # the plain-PyTorch reference's initialisation (tests/test_ensemble.py)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import ensemble_agreement as agree  # noqa: E402

from gan_lib.train import EnsembleConfig  # noqa: E402


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


def test_a_member_compared_with_another_is_far_off():
    # the measure is not blind: the same member with another seed differs by more than its own travel
    cfg = EnsembleConfig(batch_size=64, n_critic=2, width=16, depth=2, z_dim=2, steps=3, log_every=1, dtype="float64")
    data = {"a": agree.blobs(150, 0), "b": agree.blobs(150, 1, shift=0.5)}
    spec = agree.MIXED[0]
    rows = agree.compare([spec], data, cfg)
    assert rows[0]["param_error_over_distance_moved"] < 1e-12
    other = type(spec)(**{**spec.__dict__, "seed": spec.seed + 100})
    a = agree.parameters(agree.train_ensemble([spec], data, cfg, progress=False), 0)
    b = agree.parameters(agree.train_ensemble([other], data, cfg, progress=False), 0)
    assert max(float((x - y).abs().max()) for x, y in zip(a, b)) > rows[0]["distance_moved"]


def test_script_writes_its_record_and_fails_over_tolerance(tmp_path, monkeypatch):
    out = tmp_path / "agreement.json"
    proc = subprocess.run([sys.executable, str(BENCH / "ensemble_agreement.py"), "--steps", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["rows_over"] == 0
    assert len(record["rows"]) == 2 * len(agree.MIXED) + len(agree.FLOAT32) + len(agree.FLOAT32_UNCHECKED)
    assert record["worst"]["float64"] < 1e-8 and record["worst"]["float32"] < 1e-4
    # with no tolerance at all, rounding differences fail it: exit 1
    monkeypatch.setattr(agree, "TOLERANCE", {"float64": 0.0, "float32": 0.0})
    monkeypatch.setattr(sys, "argv", ["ensemble_agreement.py", "--steps", "3"])
    assert agree.main() == 1


@pytest.mark.parametrize("args, message", [(["--steps", "1"], "--steps=1 must be >= 2"),
                                           (["--device", "meta"], "only cpu and cuda"),
                                           (["--device", "nonsense"], "not a device name")])
def test_bad_arguments_are_refused(args, message):
    proc = subprocess.run([sys.executable, str(BENCH / "ensemble_agreement.py"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
