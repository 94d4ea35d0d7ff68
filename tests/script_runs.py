"""Running a benchmark script as a user does, for the tests of its command line: started in its own
process group with Ctrl-C's default action, and stopped by a Ctrl-C sent to the whole group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def start(script: Path, *args: str, **kwargs) -> subprocess.Popen:
    """``python script args...`` with text pipes, in a new session whose SIGINT is the default."""
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def ctrl_c(proc: subprocess.Popen, after: float = 0.0, timeout: float = 60.0) -> str:
    """Send SIGINT to ``proc``'s group ``after`` seconds from now and return its stderr once it has
    ended (killed with SIGKILL if it has not within ``timeout`` seconds)."""
    time.sleep(after)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return stderr
