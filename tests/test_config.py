"""CellConfig validation: every error names the field, the value and the allowed range."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstmgen.build import build as build_model  # the pipeline's own signature
from lstmgen.config import INITIALIZERS, CellConfig, load_config_file
from lstmgen.errors import ConfigError
from lstmgen.pipeline import initializers as init

BASE = {"num_units": 6, "input_size": 5}


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [
        ("num_units", 0, "num_units = 0 is not allowed: expected an integer from 1"),
        ("num_units", 6.5, "num_units = 6.5"),
        ("num_units", True, "num_units = True"),
        ("input_size", -3, "input_size = -3"),
        ("cell_clip", -1.0, "cell_clip = -1.0 is not allowed: expected a number from 0 to 3.4028235e+38"),
        ("cell_clip", float("nan"), "cell_clip = nan"),
        ("proj_clip", -0.5, "proj_clip = -0.5"),
        ("num_proj", 0, "num_proj = 0"),
        ("activation", "none", "NONE path"),
        ("activation", "linear", "NONE"),
        ("activation", "sigmoid", "no SIGMOID member"),
        ("activation", "swish", "activation = 'swish' is not allowed: expected one of tanh, relu"),
        ("init", "he_normal", "init = 'he_normal'"),
        ("seed", -1, "seed = -1"),
        ("name", "has space", "name = 'has space'"),
        ("dtype", "int8", "dtype = 'int8'"),
        ("batch_size", 0, "batch_size = 0"),
        ("time_steps", 0, "time_steps = 0"),
        ("time_major", "yes", "time_major = 'yes' is not allowed: expected true or false"),
        ("use_peepholes", 1, "use_peepholes = 1"),
    ],
    ids=lambda v: str(v),
)
def test_invalid_values_name_field_value_and_range(field: str, value: object, expect: str) -> None:
    with pytest.raises(ConfigError) as err:
        CellConfig(**(BASE | {field: value}))  # type: ignore[arg-type]
    assert expect in str(err.value)


def test_proj_clip_needs_projection() -> None:
    with pytest.raises(ConfigError, match="proj_clip = 0.5 needs a projection"):
        CellConfig(**BASE, proj_clip=0.5)
    assert CellConfig(**BASE, num_proj=3, proj_clip=0.5).output_size == 3


@pytest.mark.parametrize("quantize", ["int8", "int16x8"])
def test_integer_cells_are_tanh_cells(quantize: str) -> None:
    # LiteRT's integer kernel applied tanh to a relu6 int8 build: verify failed it as "a bug in lstmgen"
    with pytest.raises(ConfigError, match="computes tanh"):
        CellConfig(num_units=4, input_size=3, activation="relu6", quantize=quantize)
    CellConfig(num_units=4, input_size=3, activation="relu6", quantize="dynamic-int8")


def test_sizes_and_activation_case() -> None:
    c = CellConfig(**BASE, activation="TANH")
    assert c.activation == "tanh" and c.output_size == 6 and c.state_size == {"c": 6, "h": 6}
    with pytest.raises(AttributeError):
        c.num_units = 3  # type: ignore[misc]  # frozen


def test_initializer_table_matches_the_config_choices() -> None:
    assert tuple(init.INITIALIZERS) == INITIALIZERS


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_config_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cell{suffix}"
    if suffix == ".json":
        path.write_text('{"num_units": 8, "use_peepholes": true, "weights": "w.npz"}')
    else:
        path.write_text('num_units = 8\nuse_peepholes = true\nweights = "w.npz"\n')
    data = load_config_file(path)
    assert data["num_units"] == 8 and data["use_peepholes"] is True
    assert data["weights"] == str(tmp_path / "w.npz")  # relative to the config file


def test_config_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("num-units = 8\n")
    with pytest.raises(ConfigError, match="unknown key 'num-units'. Did you mean 'num_units'"):
        load_config_file(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("num_units = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(broken)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config_file(tmp_path / "missing.toml")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a table of keys"):
        load_config_file(listed)


def test_every_field_has_its_own_check() -> None:
    from dataclasses import fields

    from lstmgen.config import FIELD_CHECKS, CellConfig

    assert sorted(FIELD_CHECKS) == sorted(f.name for f in fields(CellConfig))


@pytest.mark.parametrize(
    "option,value,match",
    [
        ("cell_clip", -1.0, "cell_clip = -1.0"),
        ("activation", "sigmoid", "activation = 'sigmoid' cannot be used"),
        ("quantize", "int4", "quantize = 'int4'"),
    ],
)
def test_options_are_refused_before_the_weights_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, value: object, match: str
) -> None:
    """A bad option fails before the (possibly large) weight file is opened at all."""
    import lstmgen
    import lstmgen.weights

    opened: list[object] = []
    monkeypatch.setattr(lstmgen.weights, "NpzArrays", lambda *a: opened.append(a))
    with pytest.raises(ConfigError, match=match):
        build_model(tmp_path / "m.tflite", {option: value}, tmp_path / "w.npz")
    assert not opened
    with pytest.raises(ConfigError, match="--calibration-data / --calibration apply to --quantize"):
        build_model(tmp_path / "m.tflite", {}, tmp_path / "w.npz", calibration="random")
    assert not opened


def test_integer_modes_refuse_a_non_tanh_activation() -> None:
    # LiteRT's integer kernel computes tanh whatever the option says; TFLM honours it: the file would be two models.
    with pytest.raises(ConfigError, match=r"activation = 'relu' with quantize = 'int8'.*ignores the activation"):
        CellConfig(num_units=4, input_size=2, activation="relu", quantize="int8")
    assert CellConfig(num_units=4, input_size=2, activation="relu", quantize="dynamic-int8").activation == "relu"
