"""``benchmarks/gpu.sh``: what it refuses before it starts any measurement (its runs need a GPU)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.sh"
RECORDS = SCRIPT.parent / "records"


def gpu_sh(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": "false", **env})  # PYTHON=false: nothing could run


pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.mark.parametrize("args, env, message", [
    ((), {"PARTS": "agreement,scaling"}, "unknown part 'agreement,scaling'"),
    ((), {"PARTS": "agreement speed"}, "unknown part 'speed'"),
    ((), {"SECONDS_LEFT": "abc"}, "must be whole numbers >= 1"),
    ((), {"SCALING_PAIRS": "0"}, "must be whole numbers >= 1"),
    (("x",), {}, "must be whole numbers >= 1"),
    ((), {"COMPILE_LOSSES": "yes"}, "COMPILE_LOSSES=yes must be 0 or 1"),
])
def test_bad_settings_are_refused(args, env, message):
    proc = gpu_sh(*args, **env)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_an_existing_record_is_not_overwritten():
    taken = sorted(RECORDS.glob("ensemble-gpu-*.json"))
    if not taken:
        pytest.skip("no GPU record is committed")
    n = taken[0].stem.rsplit("-", 1)[1]
    before = taken[0].read_bytes()
    proc = gpu_sh(n, PARTS="ensemble")
    assert proc.returncode == 2 and "exists; give another N" in proc.stderr, proc.stderr
    assert taken[0].read_bytes() == before
