"""What every command shares: the exit-status epilog, path type, error handling and progress messages."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lstmgen.errors import LstmgenError

if TYPE_CHECKING:
    from lstmgen.check.verify import VerifyReport

EXIT_CODES = "Exit status: 0 success, 1 verification failed, 2 bad input or usage, 70 internal error."
EXIT_CODES_CHECK = "Exit status: 0 success, 1 the model would not run on the --check target, 2 bad input or usage, " \
    "70 internal error."
EXIT_CODES_RUN = "Exit status: 0 success, 2 bad input or usage, 70 internal error."
PATH = click.Path(path_type=Path, dir_okay=False)


def echo_json_error(message: str, exit_code: int, **payload: Any) -> None:
    """The --json document of a failed run: {"ok": false, "error", "exit_code", ...} on stdout."""
    click.echo(json.dumps({"ok": False, "error": message, "exit_code": exit_code, **payload}, indent=2))


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


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn LstmgenError into a one-paragraph message and its exit status; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = kwargs.get("as_json", False)
        try:
            return func(*args, **kwargs)
        except LstmgenError as exc:
            if as_json:
                echo_json_error(str(exc), exc.exit_code, **(getattr(exc, "payload", None) or {}))
            click.echo(f"lstmgen: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug, not bad input: say so plainly
            internal_error(exc, as_json)

    return wrapper


def progress(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda _msg: None
    return lambda msg: click.echo(f"lstmgen: {msg}...", err=True)

def verify_line(v: VerifyReport) -> str:
    verdict = "PASS" if v.passed else "FAIL"
    return (
        f"  verified with {v.runtime} {v.runtime_version} on input {v.input_shape}: max abs error "
        f"{v.max_abs_error:.3g}, max rel error {v.max_rel_error:.3g} (tolerance {v.tolerance_text()})"
        + (f", also in {', '.join(v.runtimes)}" if v.runtimes else "")
        + f": {verdict}"
    )
