"""The README runs as written: every shell, Python, Makefile and CI block, in order, in one directory.

Each block's test runs the blocks before it first (once per session, in README order), so the tests
pass in any order and alone. The directory starts as a copy of examples/ (every file the README uses
ships there), as a reader's clone would have it. A block is exempt only when an HTML comment right before it says so:
`<!-- readme-test: skip (reason) -->`. A `text` block marked `<!-- readme-test: output of the previous
block ... -->` must match that block's stdout, numbers with a decimal point (timings, errors, versions)
aside. In the CI block the `run:` lines run, except `pip install` (the test's environment has lstmgen).
A block marked `<!-- readme-test: needs torch safetensors -->` is skipped where one of those optional
packages cannot be imported (e.g. no CPU torch wheel for this Python).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import ROOT

README = ROOT / "README.md"
RUNNABLE = ("sh", "python", "make", "yaml")
FENCE = re.compile(
    r"(?:<!-- readme-test: (?P<marker>[^\n]*?) -->\n)?^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.M | re.S
)
DECIMAL = re.compile(r"\d+(?:\.\d+)+(?:e[-+]?\d+)?")  # 0.05, 2.28e-07, 2.3.0


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    marker: str
    body: str

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.lang or 'plain'}"


def blocks(text: str) -> list[Block]:
    return [
        Block(text.count("\n", 0, m.start("lang")) + 1, m["lang"], m["marker"] or "", m["body"])
        for m in FENCE.finditer(text)
    ]


BLOCKS = blocks(README.read_text(encoding="utf-8"))


class Skip(Exception):
    """A block not run here (marked skip, or an optional package missing)."""


@dataclass
class Reader:
    """Runs the README the way a reader does: every block, in order, in one directory, each once.

    A test asks for its block's outcome; the blocks before it run first (once, whatever order the tests
    run in), so each test passes or fails alone, with `-k`, `--lf` or in random order.
    """

    workdir: Path
    outcomes: dict[int, tuple[str, str]]  # block line -> ("ok", stdout) | ("skip", why) | ("fail", message)

    def outcome(self, block: Block) -> tuple[str, str]:
        for b in BLOCKS[: BLOCKS.index(block) + 1]:
            if b.line not in self.outcomes:
                try:
                    self.outcomes[b.line] = ("ok", self._run_block(b))
                except Skip as why:
                    self.outcomes[b.line] = ("skip", str(why))
                except AssertionError as failure:
                    self.outcomes[b.line] = ("fail", str(failure))
        return self.outcomes[block.line]

    def _run_block(self, block: Block) -> str:
        if block.marker.startswith("skip ("):
            raise Skip(f"marked in the README: {block.marker}")
        if block.marker.startswith("needs "):
            missing = [m for m in block.marker.split()[1:] if importlib.util.find_spec(m) is None]
            if missing:
                raise Skip(f"README.md line {block.line} needs {', '.join(missing)}, not installed here")
        if block.marker.startswith("output of the previous block"):
            before = [b for b in BLOCKS if b.line < block.line and self.outcomes.get(b.line, ("",))[0] == "ok"]
            assert before, "the block this output belongs to did not run"
            got = self.outcomes[before[-1].line][1]
            assert DECIMAL.sub("#", got).strip() == DECIMAL.sub("#", block.body).strip(), (
                f"README.md line {block.line}: the sample output is stale; the command printed:\n{got}"
            )
            return ""
        workdir = self.workdir
        if block.lang == "sh":
            return _run(["bash", "-euo", "pipefail", "-c", block.body], workdir, block)
        if block.lang == "python":
            return _run([sys.executable, "-c", block.body], workdir, block)
        if block.lang == "make":
            if shutil.which("make") is None:
                raise Skip("no make on PATH")
            (workdir / "README.mk").write_text(block.body)
            target = re.search(r"^([^\s:#]+):", block.body, re.M)
            assert target, "no target in the Makefile block"
            out = _run(["make", "-f", "README.mk", target.group(1)], workdir, block)
            assert (workdir / target.group(1)).is_file()
            return out
        # yaml: a CI job
        return "".join(
            _run(["bash", "-euo", "pipefail", "-c", cmd], workdir, block) for cmd in _ci_commands(block.body)
        )


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Reader:
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return Reader(root, {})


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LSTMGEN_RUNTIME", "MAKEFLAGS", "MAKELEVEL")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run(cmd: list[str], cwd: Path, block: Block) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"README.md line {block.line} ({block.lang}) exited {done.returncode}\n"
        f"--- block ---\n{block.body}--- stdout ---\n{done.stdout}--- stderr ---\n{done.stderr}"
    )
    return done.stdout


def _ci_commands(body: str) -> list[str]:
    runs = [m.group(1) for m in re.finditer(r"^\s*- run: (.+?)\s*(?:#.*)?$", body, re.M)]
    return [r for r in runs if not r.startswith("pip install")]


def test_every_block_is_run_or_marked() -> None:
    assert len(BLOCKS) > 10
    for b in BLOCKS:
        marked = b.marker.startswith(("skip (", "output of the previous block", "needs "))
        assert b.lang in RUNNABLE or marked, f"README.md line {b.line}: a ```{b.lang} block neither runs nor is marked"
        assert not b.marker or marked or b.lang == "yaml", f"README.md line {b.line}: unknown marker {b.marker!r}"
        assert b.lang in RUNNABLE or not b.marker.startswith("needs "), f"README.md line {b.line}: needs on a {b.lang}"
    assert any(_ci_commands(b.body) for b in BLOCKS if b.lang == "yaml")


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(block: Block, reader: Reader) -> None:
    """This block, after the ones before it (run once, in order): passes alone and in any test order."""
    kind, detail = reader.outcome(block)
    if kind == "skip":
        pytest.skip(detail)
    assert kind == "ok", detail


def test_local_links_resolve() -> None:
    """Links from README.md and docs/ to files of the repository (docs/x.md, examples/, ...) point at files."""
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\((?!https?://|#)([^)#\s]+)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
