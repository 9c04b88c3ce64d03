"""Progress of long work: lower layers count steps of a named task; the CLI decides whether and how to show them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# (task label, steps done, steps expected); called often: a sink throttles its own output.
Sink = Callable[[str, int, int], None]


@dataclass
class _Task:
    label: str
    total: int
    done: int = 0


_sink: ContextVar[Sink | None] = ContextVar("lstmgen_progress_sink", default=None)
_task: ContextVar[_Task | None] = ContextVar("lstmgen_progress_task", default=None)


@contextmanager
def showing(sink: Sink | None) -> Iterator[None]:
    """Send the progress of the tasks run inside to `sink` (None: nowhere, the default)."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


@contextmanager
def task(label: str, total: int = 0) -> Iterator[None]:
    """A long piece of work of about `total` steps (e.g. LSTM time steps over every evaluation it makes);
    0 = not known yet: the code doing the work states it with expect()."""
    sink = _sink.get()
    if sink is None or _task.get() is not None:  # nobody watching, or part of an enclosing task
        yield
        return
    current = _Task(label, max(total, 1))
    token = _task.set(current)
    try:
        yield
    finally:
        _task.reset(token)
        sink(label, current.total, current.total)  # done: lets the sink finish its line


def expect(total: int) -> None:
    """State how many steps the current task will take, once the code doing it knows (no task: nothing)."""
    current = _task.get()
    if current is not None:
        current.total = max(total, 1)


def step_hook() -> Callable[[], None] | None:
    """A callable to call once per step of the current task, or None when nothing is shown (no cost then)."""
    current, sink = _task.get(), _sink.get()
    if current is None or sink is None:
        return None

    def step() -> None:
        current.done += 1
        sink(current.label, min(current.done, current.total - 1), current.total)  # 100% only when it ends

    return step
