"""read_model: a malformed buffer is a bad-input error (exit 2), a bug in lstmgen's own reading code is exit 70."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import lstmgen.tflite.reader as flatbuf_reader
from lstmgen.cli.main import main
from lstmgen.errors import ModelFileError
from lstmgen.tflite.schema import Reader


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flatbuf") / "m.tflite"
    args = ["build", "--num-units", "4", "--input-size", "3", "-o", str(path), "--no-verify"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return path


def test_a_truncated_buffer_is_a_corrupt_file(model: Path) -> None:
    data = model.read_bytes()
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        flatbuf_reader.read_model(data[: len(data) // 3], "m.tflite")


def test_an_opcode_index_past_the_codes_is_named(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    length = Reader.length
    monkeypatch.setattr(Reader, "length", lambda self, name: 0 if name == "OperatorCodes" else length(self, name))
    with pytest.raises(ModelFileError, match="operator code 0, but the file has 0"):
        flatbuf_reader.read_model(model.read_bytes(), "m.tflite")


@pytest.mark.parametrize("error", [IndexError, ValueError, KeyError, TypeError])
def test_a_bug_in_lstmgen_reading_code_is_exit_70(model: Path, monkeypatch: pytest.MonkeyPatch, error: type) -> None:
    """The corrupt-file guard covers the flatbuffers accessors only, not lstmgen's code around them."""

    def broken(*args: object) -> None:
        raise error("a bug in lstmgen")

    monkeypatch.setattr(flatbuf_reader, "_check_indices", broken)
    with pytest.raises(error):
        flatbuf_reader.read_model(model.read_bytes(), "m.tflite")
    result = CliRunner().invoke(main, ["inspect", str(model)])
    assert result.exit_code == 70, (result.exit_code, result.output)
