"""What every command shares: the exit-status epilog, path type, error handling and progress messages."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lstmgen.errors import LstmgenError
from lstmgen.output import cleanup
from lstmgen.runtimes import CLI_RUNTIME_CHOICES

if TYPE_CHECKING:
    from lstmgen.check.report import VerifyReport

EXIT_CODES = "Exit status: 0 success, 1 verification failed, 2 bad input or usage, 70 internal error."
EXIT_CODES_CHECK = (
    "Exit status: 0 success, 1 the model would not run on the --check target, 2 bad input or usage, 70 internal error."
)
EXIT_CODES_RUN = "Exit status: 0 success, 2 bad input or usage, 70 internal error."
PATH = click.Path(path_type=Path, dir_okay=False)


def runtime_option(help: str, extra: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--runtime, as build, verify and run take it: a TFLite interpreter, micro (TFLM) or auto (+ `extra`)."""
    return click.option(
        "--runtime", type=click.Choice((*CLI_RUNTIME_CHOICES, *extra)), default="auto", show_default=True, help=help
    )


def json_document(doc: Any) -> str:
    """`doc` as strict JSON: a non-finite number (an error of inf when shapes differ) becomes null, since
    JSON has no Infinity or NaN and strict parsers (JavaScript's, jq's) reject Python's spelling of them."""

    def strict(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: strict(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [strict(v) for v in value]
        return value

    return json.dumps(strict(doc), indent=2, allow_nan=False, default=str)


def echo_json_error(message: str, exit_code: int, **payload: Any) -> None:
    """The --json document of a failed run: {"ok": false, "error", "exit_code", ...} on stdout."""
    click.echo(json_document({"ok": False, "error": message, "exit_code": exit_code, **payload}))


def internal_error(exc: BaseException, as_json: bool) -> None:
    """Report a bug in lstmgen (exit 70): one plain line on stderr, and the JSON document with --json."""
    if os.environ.get("LSTMGEN_DEBUG"):
        traceback.print_exception(exc)
    message = (
        f"internal error: {type(exc).__name__}: {exc}. This is a bug in lstmgen; "
        "please report it (set LSTMGEN_DEBUG=1 for the traceback)."
    )
    if as_json:
        echo_json_error(message, 70)
    click.echo(f"lstmgen: {message}", err=True)
    sys.exit(70)


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (temp files are removed on the way) and exit 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(signum)


def _install_signal_handlers() -> None:
    if threading.current_thread() is threading.main_thread():  # signal.signal works only there
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                signal.signal(sig, _raise_terminated)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn LstmgenError into a one-paragraph message and its exit status; never a traceback.

    Ctrl-C exits 130 and SIGTERM/SIGHUP 128 + signal, after removing the command's temp files.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = kwargs.get("as_json", False)
        _install_signal_handlers()
        try:
            return func(*args, **kwargs)
        except (KeyboardInterrupt, Terminated) as exc:
            cleanup()
            signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
            if as_json:
                echo_json_error("interrupted", 128 + signum)
            click.echo(f"lstmgen: interrupted ({signal.Signals(signum).name}); no output written.", err=True)
            sys.exit(128 + signum)
        except LstmgenError as exc:
            if as_json:
                echo_json_error(str(exc), exc.exit_code, **(getattr(exc, "payload", None) or {}))
            click.echo(f"lstmgen: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except BrokenPipeError:
            # The reader went away (`lstmgen cells X | head`): stop quietly, as a tool killed by SIGPIPE does.
            cleanup()
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            sys.exit(128 + signal.SIGPIPE)
        except Exception as exc:  # a bug, not bad input: say so plainly
            internal_error(exc, as_json)

    return wrapper


def _stderr_is_terminal() -> bool:
    return bool(sys.stderr.isatty())


def progress(quiet: bool) -> Callable[[str], None]:
    """Step messages ("reading weights...") on stderr: only on a terminal, never with -q."""
    if quiet or not _stderr_is_terminal():
        return lambda _msg: None
    return lambda msg: click.echo(f"lstmgen: {msg}...", err=True)


class TerminalProgress:
    """Shows a task's progress as one line rewritten in place ("lstmgen: calibrating: 45% (900,000/2,000,000
    steps)"): only once the task has run for `after` seconds, at most every `every` seconds, then a final 100%."""

    def __init__(self, after: float = 2.0, every: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self.after, self.every, self.clock = after, every, clock
        self.label: str | None = None
        self.started = self.last = 0.0
        self.shown = False

    def __call__(self, label: str, done: int, total: int) -> None:
        now = self.clock()
        if label != self.label:
            self.label, self.started, self.last, self.shown = label, now, 0.0, False
        finished = done >= total
        if finished and not self.shown:
            return  # quick work: nothing to show
        if not finished and (now - self.started < self.after or now - self.last < self.every):
            return
        self.last, self.shown = now, True
        line = f"lstmgen: {label}: {100 * done // total}% ({done:,}/{total:,} steps)"
        click.echo(f"\r\x1b[K{line}", err=True, nl=finished)
        if finished:
            self.label = None


def progress_sink(quiet: bool) -> TerminalProgress | None:
    """Where long tasks (calibration, verification) report: a terminal line, or nowhere (-q, not a terminal)."""
    return None if quiet or not _stderr_is_terminal() else TerminalProgress()


def verify_line(v: VerifyReport) -> str:
    """The interpreter-against-reference line; its verdict is that check's alone (the source has its own line)."""
    if not v.checks:
        return "  not run in an interpreter: the file's structure already decides (below)"
    verdict = "PASS" if all(c.passed for c in v.checks) else "FAIL"
    return (
        f"  verified with {v.runtime} {v.runtime_version} on input {v.input_shape}: max abs error "
        f"{v.max_abs_error:.3g}, max rel error {v.max_rel_error:.3g} (tolerance {v.tolerance_text()})"
        + (f", also in {', '.join(v.runtimes)}" if v.runtimes else "")
        + f": {verdict}"
    )
