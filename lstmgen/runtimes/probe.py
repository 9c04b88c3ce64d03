"""A foreign model meets the interpreter first in a child process: a crash there is a refusal here, not a SIGSEGV.

lstmgen's model checker (tflite/validate.py) covers what the kernels of the ops it handles
dereference, but it cannot be complete for every file a user passes. So before `verify` or `run`
loads a model file lstmgen did not just write, a forked child loads it, allocates and runs one
step; if the child dies by a signal, the model is refused with exit 2.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lstmgen import guard
from lstmgen.errors import ModelFileError

PROBE_SECONDS = 60.0  # one step of a model whose tensors are at most 2 GiB


def probe(path: str | Path, what: str, load_and_step: Callable[[], None]) -> None:
    """Run `load_and_step()` (load the model, allocate, invoke once) in a forked child; refuse on a crash.

    Skipped for files this process is writing (their checks ran on records it built itself) and
    where fork is unavailable or unsafe (not Linux).
    """
    if guard.is_own(path) or not sys.platform.startswith("linux"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller, never runs atexit handlers
        code = 0
        try:
            faulthandler.disable()  # a crash here is the expected outcome, not news for the user's terminal
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            load_and_step()
        except BaseException:  # a clean refusal by the interpreter: the parent reports it itself
            code = 3
        os._exit(code)
    deadline = time.monotonic() + PROBE_SECONDS
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:  # a stuck child (e.g. a lock held at fork): do not judge the model
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.002)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        raise ModelFileError(
            f"{path}: the {what} interpreter crashed ({sig}) on this model in a test process, although lstmgen's "
            "checks passed it. The file is corrupt or crafted (or uses something lstmgen does not check); it is "
            "refused. Rebuild it, or report it to lstmgen if it comes from a converter."
        )
