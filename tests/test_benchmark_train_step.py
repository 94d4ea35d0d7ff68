"""``benchmarks/train_step.py`` as a user runs it: arguments checked before the measurement, a record
that says how it was made, and Ctrl-C without a traceback or a file."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from script_runs import ctrl_c, start

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


def run_script(*args: str) -> subprocess.Popen:
    return start(SCRIPT, *args)


@pytest.mark.parametrize("args, message", [
    (["--pairs", "0"], "--pairs=0 must be >= 1"),  # 0 used to be taken for the default
    (["--steps", "0"], "--steps=0 must be >= 1"),
    (["--out", "{tmp}"], "is a folder"),  # used to fail with a traceback after the whole measurement
    (["--out", "{tmp}/file.txt/run.json"], "is not a folder"),
    (["--out", "{tmp}/pipe"], "is not a regular file"),
])
def test_bad_arguments_are_refused_before_any_measuring(tmp_path, args, message):
    (tmp_path / "file.txt").write_text("")
    os.mkfifo(tmp_path / "pipe")
    proc = run_script("--quick", *[a.format(tmp=tmp_path) for a in args])
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and message in stderr and stdout == "", stderr  # nothing measured
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "pipe"]


def test_quick_record_says_how_it_was_made(tmp_path):
    out = tmp_path / "a dir" / "step.json"
    proc = run_script("--quick", "--pairs", "1", "--steps", "1", "--out", str(out))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    record = json.loads(out.read_text())
    assert shlex.split(record["command"]) == ["python", "benchmarks/train_step.py", "--quick", "--pairs", "1",
                                              "--steps", "1", "--out", str(out)]
    assert record["args"]["out"] == str(out) and record["args"]["pairs"] == 1 and record["args"]["steps"] == 1
    assert record["utc"].endswith("Z") and record["cpu_model"] and record["python"]
    head = subprocess.run(["git", "-C", str(SCRIPT.parents[1]), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["source"].split(" ")[0] == (head or record["source"].split(" ")[0])
    assert record["modes"][0]["bit_equal"] is True
    assert [p.name for p in out.parent.iterdir()] == ["step.json"]


def test_ctrl_c_leaves_no_file_and_no_traceback(tmp_path):
    out = tmp_path / "step.json"
    proc = run_script("--quick", "--pairs", "200", "--out", str(out))
    stderr = ctrl_c(proc, after=6.0)  # past the imports, into the measurement
    assert proc.returncode == 130, stderr
    assert "interrupted; no result file was written" in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []
