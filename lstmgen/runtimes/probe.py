"""A foreign model meets the interpreter first in a child process: a crash there is a refusal here, not a SIGSEGV.

lstmgen's model checker (tflite/validate.py) covers what the kernels of the ops it handles
dereference, but it cannot be complete for every file a user passes. So before `verify` or `run`
loads a model file lstmgen did not just write, a forked child loads it, allocates and runs one
step; if the child dies by a signal, the model is refused with exit 2.
"""

from __future__ import annotations

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
    if guard.is_own(path):
        return
    outcome = guard.in_child(load_and_step, PROBE_SECONDS)
    if outcome.startswith("SIG"):  # "hung" is not judged: a lock held at fork can stall a sound model's child
        raise ModelFileError(
            f"{path}: the {what} interpreter crashed ({outcome}) on this model in a test process, although lstmgen's "
            "checks passed it. The file is corrupt or crafted (or uses something lstmgen does not check); it is "
            "refused. Rebuild it, or report it to lstmgen if it comes from a converter."
        )
