"""The JSON lstmgen prints, and the example config, validate against schemas/."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import ROOT, invoke, json_report

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
    for result, code in zip(docs, (0, 0, 0, 2), strict=True):
        jsonschema.validate(json_report(result, code), REPORT)


def test_json_report_fails_on_an_error_document(tmp_path: Path) -> None:
    """The schema accepts error documents too: json_report's exit code and `ok` checks are what catch one."""
    error = invoke("inspect", tmp_path / "missing.tflite", "--json")
    with pytest.raises(AssertionError, match="exit 2, expected 0"):
        json_report(error)
    assert json_report(error, 2)["error"]
