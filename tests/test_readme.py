"""The README runs as written: every shell, Python, Makefile and CI block, in order, in one directory.

The directory starts as a copy of examples/ (every file the README uses ships there), as a reader's
clone would have it. A block is exempt only when an HTML comment right before it says so:
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
_stdout: dict[int, str] = {}  # block line -> what it printed (for the output blocks after it)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return root


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


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(block: Block, workdir: Path) -> None:
    if block.marker.startswith("skip ("):
        pytest.skip(f"marked in the README: {block.marker}")
    if block.marker.startswith("needs "):
        missing = [m for m in block.marker.split()[1:] if importlib.util.find_spec(m) is None]
        if missing:
            pytest.skip(f"README.md line {block.line} needs {', '.join(missing)}, not installed here")
    if block.marker.startswith("output of the previous block"):
        before = [b for b in BLOCKS if b.line < block.line and b.line in _stdout]
        assert before, "the block this output belongs to did not run"
        got = _stdout[before[-1].line]
        assert DECIMAL.sub("#", got).strip() == DECIMAL.sub("#", block.body).strip(), (
            f"README.md line {block.line}: the sample output is stale; the command printed:\n{got}"
        )
        return
    if block.lang == "sh":
        out = _run(["bash", "-euo", "pipefail", "-c", block.body], workdir, block)
    elif block.lang == "python":
        out = _run([sys.executable, "-c", block.body], workdir, block)
    elif block.lang == "make":
        if shutil.which("make") is None:
            pytest.skip("no make on PATH")
        (workdir / "README.mk").write_text(block.body)
        target = re.search(r"^([^\s:#]+):", block.body, re.M)
        assert target, "no target in the Makefile block"
        out = _run(["make", "-f", "README.mk", target.group(1)], workdir, block)
        assert (workdir / target.group(1)).is_file()
    else:  # yaml: a CI job
        out = "".join(_run(["bash", "-euo", "pipefail", "-c", cmd], workdir, block) for cmd in _ci_commands(block.body))
    _stdout[block.line] = out


def test_local_links_resolve() -> None:
    """Links from README.md and docs/ to files of the repository (docs/x.md, examples/, ...) point at files."""
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\((?!https?://|#)([^)#\s]+)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
