"""The JSON lstmgen prints, and the example config, validate against schemas/."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import ROOT

from lstmgen.cli.main import main
from lstmgen.config import CONFIG_KEYS, FILE_ONLY_KEYS

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport lstmgen depends on there
    import tomli as tomllib

jsonschema = pytest.importorskip("jsonschema")
REPORT = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
CONFIG = json.loads((ROOT / "schemas" / "cell-config.schema.json").read_text())


def test_config_schema_lists_exactly_the_config_keys() -> None:
    assert set(CONFIG["properties"]) == set(CONFIG_KEYS) | set(FILE_ONLY_KEYS)


def test_example_config_is_valid() -> None:
    jsonschema.validate(tomllib.loads((ROOT / "examples" / "cell.toml").read_text()), CONFIG)


@pytest.mark.runtime
def test_cli_json_outputs_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    model = tmp_path / "m.tflite"
    args = ["build", "--num-units", "6", "--input-size", "5", "--num-proj", "4", "-o", str(model), "--json"]
    docs = [runner.invoke(main, args)]
    docs.append(runner.invoke(main, ["inspect", str(model), "--json"]))
    docs.append(runner.invoke(main, ["verify", str(model), "--json"]))
    docs.append(runner.invoke(main, ["inspect", str(tmp_path / "missing.tflite"), "--json"]))
    for result in docs:
        doc = json.loads(result.stdout)
        jsonschema.validate(doc, REPORT)
    assert [json.loads(r.stdout)["ok"] for r in docs] == [True, True, True, False]
