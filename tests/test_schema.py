"""lstmgen's own TFLite schema tables against the generated `tflite` package (the oracle; a test-only dependency)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import flatbuffers
import pytest
import tflite
from click.testing import CliRunner

import lstmgen.tflite.reader as tflite_reader
from lstmgen.cli.main import main
from lstmgen.tflite import schema
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.schema import OPTIONS, SCALARS, TABLES, Field, Reader, TableSchema

ALL_TABLES = [*TABLES.values(), *OPTIONS.values()]


class _Recorder:
    """Stands in for flatbuffers.Builder and records the one call a generated Start/Add function makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, method: str) -> Any:
        return lambda *args: self.calls.append((method, *args))


def _generated(table: str, what: str) -> Any:
    return getattr(sys.modules[f"tflite.{table}"], f"{table}{what}")


def _generated_fields(table: str) -> dict[str, tuple[Any, ...]]:
    """Field name -> (Builder method, slot, default) of every <Table>Add<Field> function."""
    prefix = f"{table}Add"
    out = {}
    for name, fn in vars(sys.modules[f"tflite.{table}"]).items():
        if name.startswith(prefix) and callable(fn):
            rec = _Recorder()
            fn(rec, 7)
            method, slot, _, default = rec.calls[0]
            out[name[len(prefix) :]] = (method, slot, default)
    return out


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_every_field_slot_kind_and_default_matches_the_generated_code(table: TableSchema) -> None:
    rec = _Recorder()
    _generated(table.name, "Start")(rec)
    assert rec.calls == [("StartObject", table.size)]
    generated = _generated_fields(table.name)
    assert sorted(generated) == sorted(table.fields), "every field of the table, no more"
    for name, f in table.fields.items():
        method, slot, default = generated[name]
        assert slot == f.slot, name
        if f.kind in SCALARS:
            assert (method, default) == (SCALARS[f.kind][1], f.default), name
            assert type(f.default) is (bool if f.kind == "bool" else float if "float" in f.kind else int), name
        else:
            assert (method, default, f.default) == ("PrependUOffsetTRelativeSlot", 0, None), name
            _check_offset_kind(table.name, f)


def _check_offset_kind(table: str, f: Field) -> None:
    cls = getattr(tflite, table)
    accessor = inspect.getsource(getattr(cls, f.name))
    if f.kind.startswith("["):
        element = f.kind[1:-1]
        assert hasattr(cls, f"{f.name}Length"), f.name
        if element in SCALARS:
            numpy = inspect.getsource(getattr(cls, f"{f.name}AsNumpy"))
            assert f"number_types.{SCALARS[element][0].__name__}," in numpy, f.name
        elif element == "string":
            assert ".String(" in accessor, f.name
        else:
            assert f"from tflite.{element} import {element}" in accessor, f.name
    elif f.kind == "string":
        assert ".String(" in accessor, f.name
    elif f.kind == "union":
        assert ".Union(" in accessor, f.name
    else:
        assert f"from tflite.{f.kind} import {f.kind}" in accessor and "Indirect" in accessor, f.name


def _value(f: Field, b: flatbuffers.Builder) -> Any:
    """A non-default value of each field (an offset: any string will do for comparing bytes)."""
    if f.kind not in SCALARS:
        return b.CreateString(f.name)
    if f.kind == "bool":
        return not f.default
    return (f.default or 0) + (1.5 if "float" in f.kind else 3)


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_a_table_with_every_field_is_byte_identical_and_reads_back(table: TableSchema) -> None:
    ours, theirs = flatbuffers.Builder(0), flatbuffers.Builder(0)
    values = [(name, _value(f, ours)) for name, f in table.fields.items()]
    for f in table.fields.values():
        _value(f, theirs)
    root = table.build(ours, values)
    _generated(table.name, "Start")(theirs)
    for name, value in values:
        _generated(table.name, f"Add{name}")(theirs, value)
    ours.Finish(root)
    theirs.Finish(_generated(table.name, "End")(theirs))
    data = bytes(ours.Output())
    assert data == bytes(theirs.Output())

    read = Reader.root(data, table, "t")
    generated = getattr(tflite, table.name).GetRootAs(data, 0)
    for name, f in table.fields.items():
        if f.kind in SCALARS:
            assert read.get(name) == getattr(generated, name)() == dict(values)[name], name
            assert type(read.get(name)) is type(getattr(generated, name)()), name
        elif f.kind == "string":
            assert read.get(name) == getattr(generated, name)() == name.encode()


def test_an_empty_table_reads_as_the_defaults() -> None:
    for table in ALL_TABLES:
        b = flatbuffers.Builder(0)
        b.Finish(table.build(b, ()))
        data = bytes(b.Output())
        read, generated = Reader.root(data, table, "t"), getattr(tflite, table.name).GetRootAs(data, 0)
        for name, f in table.fields.items():
            if f.kind in SCALARS:
                assert read.get(name) == getattr(generated, name)() == f.default, (table.name, name)
            else:
                assert not read.has(name)


@pytest.mark.parametrize("enum", ["BuiltinOperator", "TensorType", "ActivationFunctionType"])
def test_enum_values_match(enum: str) -> None:
    def members(cls: type) -> dict[str, int]:
        return {k: v for k, v in vars(cls).items() if not k.startswith("_")}

    assert members(getattr(schema, enum)) == members(getattr(tflite, enum))


def test_the_options_union_matches() -> None:
    generated = {k: v for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
    assert dict(schema.BUILTIN_OPTIONS_CODE) == generated
    assert all(name in schema.BUILTIN_OPTIONS for name in OPTIONS)


def test_an_options_table_without_a_schema_reads_as_its_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Converter output may hold any of ~130 options tables; one lstmgen does not list is named, never a crash."""
    path = tmp_path / "bi.tflite"
    args = ["build", "--num-units", "4", "--input-size", "3", "--bidirectional", "-o", str(path), "--no-verify"]
    assert CliRunner().invoke(main, args).exit_code == 0
    data = path.read_bytes()
    known = {op.options.table: op.options.fields for op in read_model(data).operators if op.options is not None}
    assert known["ConcatenationOptions"] == (("Axis", 2), ("FusedActivationFunction", 0))
    monkeypatch.setattr(tflite_reader, "OPTIONS", {k: v for k, v in OPTIONS.items() if k != "ConcatenationOptions"})
    unknown = {op.options.table: op.options.fields for op in read_model(data).operators if op.options is not None}
    assert unknown == {**known, "ConcatenationOptions": ()}


def test_no_command_imports_the_generated_package(tmp_path: Path) -> None:
    """The generated accessors cost ~200 module imports at start-up: build, verify and inspect run without them."""
    out = tmp_path / "m.tflite"
    probe = (
        "import json, sys\n"
        "from lstmgen.cli.main import main\n"
        "for argv in (['build', '--num-units', '4', '--input-size', '3', '-o', sys.argv[1], '-q'],\n"
        "             ['build', '--num-units', '4', '--input-size', '3', '--quantize', 'int8', '--calibration',\n"
        "              'random', '--time-steps', '2', '-o', sys.argv[1], '-q'],\n"
        "             ['verify', sys.argv[1], '-q'], ['inspect', '--json', sys.argv[1]]):\n"
        "    try:\n"
        "        main(argv, prog_name='lstmgen')\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, (argv, e.code)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe, str(out)], capture_output=True, text=True, check=True)
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert [m for m in loaded if m == "tflite" or m.startswith("tflite.")] == []
