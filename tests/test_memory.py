"""retain_freed_memory: freed blocks are reused instead of faulting in fresh pages (counted by getrusage)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from gan_lib.train import retain_freed_memory

PROBE = r"""
import resource, sys, torch
if sys.argv[1] == "retain":
    from gan_lib.train import retain_freed_memory
    assert retain_freed_memory()
def step(i):
    # a training step's pattern: a few activations of about 8 MiB alive at once, then all freed; each
    # step's are 64 KiB larger than the last, so that glibc's own adaptive threshold (raised to the
    # size of the last mmap-ed block freed) never catches up with them
    a = [torch.ones(2**21 + i * 2**14) for _ in range(4)]
    return sum(float(t[0]) for t in a)
step(0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(1, 41):
    step(i)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_blocks_are_reused_without_page_faults():
    # 40 steps x 4 blocks of 8.1-10.5 MiB = 1.45 GiB written: 380k pages if every block were fresh
    default, retained = faults("default"), faults("retain")
    assert default > 300_000, default  # glibc maps every block afresh: observed 380,320 faults
    # the heap keeps the freed blocks and only grows by the steps' increments: observed 4.6k-7.2k
    assert retained < default / 20, (retained, default)


def test_bad_thresholds_are_refused():
    for bad in (-1, 2**26, 1.5, True):
        with pytest.raises(ValueError, match="mmap_threshold="):
            retain_freed_memory(bad)
    with pytest.raises(ValueError, match="trim_threshold="):
        retain_freed_memory(trim_threshold=-5)
    with pytest.raises(ValueError, match="trim_threshold="):
        retain_freed_memory(trim_threshold=2**31)  # beyond the C int that mallopt takes
