"""Make the shared numpy references (tests/reference.py) importable as ``reference``.

pytest's default import mode already puts tests/ on sys.path for rootless test modules; this keeps
``from reference import ...`` working under ``--import-mode=importlib`` and from other roots too.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
