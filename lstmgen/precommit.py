"""The pre-commit hook (`lstmgen-pre-commit`): committed models must be what their configs and weights build.

Each config (TOML/JSON with lstmgen's keys) that has a model beside it (same name, .tflite) is a pair.
When the config, its weights or calibration data, or the model is among the files given (pre-commit
passes the staged ones), the model is rebuilt in memory and compared byte for byte: builds are
deterministic, so any difference means the committed model is stale (or was edited). The hook then
writes the fresh build (unless --check) and fails, as formatters do, so the user can stage it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lstmgen.errors import LstmgenError

CONFIG_SUFFIXES = (".toml", ".json")


_SKIPPED_DIRS = {"node_modules", "site-packages", "__pycache__", "build", "dist"}


def _configs(pattern: str | None) -> set[Path]:
    """Config files by glob, or (None) every TOML/JSON of the repository outside hidden dirs, venvs, build/."""
    if pattern is not None:
        return {p for p in Path().glob(pattern) if p.suffix.lower() in CONFIG_SUFFIXES}
    found = set()
    for folder, dirs, files in os.walk("."):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS]  # .git, .venv, ...
        found |= {Path(folder, f) for f in files if Path(f).suffix.lower() in CONFIG_SUFFIXES}
    return found


def _pairs(patterns: list[str] | None) -> list[tuple[Path, Path]]:
    """(config, model) for every config found (see _configs) that has a .tflite beside it."""
    wanted: list[str | None] = list(patterns) if patterns else [None]
    found = sorted({p for pattern in wanted for p in _configs(pattern)})
    return [(c, c.with_suffix(".tflite")) for c in found if c.with_suffix(".tflite").is_file()]


def _inputs(config: Path) -> set[Path]:
    """The files a config's build reads: itself, its weights, its calibration data (resolved paths)."""
    from lstmgen.config import load_config_file

    data = load_config_file(config)  # relative paths in it are resolved against its folder
    paths = {config, *(Path(str(data[k])) for k in ("weights", "calibration_data") if data.get(k))}
    return {p.resolve() for p in paths}


def check(pairs: list[tuple[Path, Path]], changed: set[Path] | None, write: bool) -> list[str]:
    """Rebuild the pairs whose files changed (None: all); the problems found, one line each."""
    from lstmgen.api import build

    problems = []
    for config, model in pairs:
        try:
            if changed is not None and not ((_inputs(config) | {model.resolve()}) & changed):
                continue
            built = build(config=config)
        except LstmgenError as exc:
            problems.append(f"{model}: cannot be rebuilt from {config}: {exc}")
            continue
        if built.data == model.read_bytes():
            continue
        if write:
            built.save(model)
        problems.append(
            f"{model} is not what {config} builds ({'rewritten: stage it' if write else 'run lstmgen build'})"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lstmgen-pre-commit",
        description="Fail when a committed model differs from what its config and weights build (then rewrite it).",
        epilog="Example (.pre-commit-config.yaml): hooks: [{id: lstmgen-models, args: [--configs, 'models/*.toml']}]",
    )
    parser.add_argument("files", nargs="*", type=Path, help="Changed files (pre-commit passes the staged ones).")
    parser.add_argument(
        "--configs",
        action="append",
        help="Glob of config files, each building the .tflite of the same name beside it [default: every .toml "
        "and .json outside hidden folders, virtualenvs and build/].",
    )
    parser.add_argument("--all", action="store_true", help="Rebuild every pair, changed or not.")
    parser.add_argument("--check", action="store_true", help="Only report stale models; do not rewrite them.")
    args = parser.parse_args(argv)
    pairs = _pairs(args.configs)
    changed = None if args.all else {p.resolve() for p in args.files}
    problems = check(pairs, changed, write=not args.check)
    for line in problems:
        print(f"lstmgen: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
