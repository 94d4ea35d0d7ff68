"""Make the shared numpy references (tests/reference.py) importable as ``reference``.

pytest's default import mode already puts tests/ on sys.path for rootless test modules; this keeps
``from reference import ...`` working under ``--import-mode=importlib`` and from other roots too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture(scope="module")
def one_thread():
    """torch on one intra-op thread for a module's tests, restored afterwards: the tensors there are
    small, and on a shared 2-core machine a second thread mostly contends with the first (and with
    other test processes). A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
