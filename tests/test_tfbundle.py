"""Tests for lstmgen.weights.tfbundle: synthetic bundles from a test-only writer, plus real TF checkpoints."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tf_bundle_writer import (
    Bundle,
    crc32c_bitwise,
    entry_proto,
    header_proto,
    masked,
    ordered_signed,
    slice_key,
    write_bundle,
    write_table,
)

from lstmgen.errors import WeightFileError
from lstmgen.weights import tfbundle
from lstmgen.weights.tfbundle import list_variables, read_variables, resolve_prefix

RNG = np.random.default_rng(1234)
LSTM_VARS = {
    "rnn/lstm_cell/kernel": RNG.standard_normal((7, 16)).astype(np.float32),
    "rnn/lstm_cell/bias": RNG.standard_normal(16).astype(np.float32),
    "rnn/lstm_cell/w_i_diag": RNG.standard_normal(4).astype(np.float32),
    "rnn/lstm_cell/projection/kernel": RNG.standard_normal((4, 3)).astype(np.float32),
    "dense/kernel": RNG.standard_normal((3, 2)).astype(np.float64),
    "global_step": np.array(42, dtype=np.int64),
}


@pytest.fixture
def simple(tmp_path: Path) -> Bundle:
    return write_bundle(tmp_path / "ck" / "model.ckpt", LSTM_VARS)


def raises_naming(path: Path | str, fn: Callable[..., object], *args: object) -> str:
    with pytest.raises(WeightFileError) as info:
        fn(*args)
    msg = str(info.value)
    assert str(path) in msg or Path(path).name in msg, msg
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------


def test_crc32c_matches_reference_vectors_and_bitwise_implementation() -> None:
    assert tfbundle._crc32c(b"123456789") == 0xE3069283
    assert tfbundle._crc32c(b"") == 0
    for n in (1, 4095, 16383, 16384, 16385, 70001):  # both the bytewise and the vectorised paths
        data = os.urandom(n)
        assert tfbundle._crc32c(data) == crc32c_bitwise(data), n


@pytest.mark.parametrize("v", [0, 1, -1, 63, -64, 64, -65, 0x424242, -0x800, 2**40, -(2**40), 2**62, -(2**63)])
def test_ordered_code_signed_encoding(v: int) -> None:
    assert tfbundle._write_signed_num_increasing(v) == ordered_signed(v)


def test_ordered_code_documented_examples() -> None:
    assert tfbundle._write_signed_num_increasing(0x424242) == bytes.fromhex("f0424242")
    assert tfbundle._write_signed_num_increasing(-0x800) == bytes.fromhex("3800")
    assert tfbundle._slice_key(b"a\x00b\xff", ((0, 2), (0, -1))) == slice_key(b"a\x00b\xff", [(0, 2), (0, -1)])


# ---------------------------------------------------------------------------
# Synthetic bundles: happy paths
# ---------------------------------------------------------------------------


def test_list_variables_synthetic(simple: Bundle) -> None:
    listing = list_variables(simple.prefix)
    assert list(listing) == sorted(LSTM_VARS)
    for name, arr in LSTM_VARS.items():
        assert listing[name] == (arr.dtype, arr.shape)


def test_read_all_values_exact(simple: Bundle) -> None:
    got = read_variables(simple.prefix)
    assert list(got) == sorted(LSTM_VARS)
    for name, arr in LSTM_VARS.items():
        assert got[name].dtype == arr.dtype.newbyteorder("<") and got[name].shape == arr.shape
        np.testing.assert_array_equal(got[name], arr)
    got["dense/kernel"][0, 0] = 5.0  # arrays are writable, not views of a read-only buffer


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(-5, 5, dtype=np.int8),
        np.arange(10, dtype=np.uint8).reshape(2, 5),
        np.arange(-3, 3, dtype=np.int16),
        np.arange(6, dtype=np.uint16),
        np.array([1, -2, 3], dtype=np.int32),
        np.array([[True, False], [False, True]]),
        np.array([0.5, -2.25, 65504.0], dtype=np.float16),
        np.array([1 + 2j, -3j], dtype=np.complex64),
        np.zeros((0, 3), dtype=np.float32),
        np.float32(3.5).reshape(()),
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
def test_dtypes_roundtrip(tmp_path: Path, arr: np.ndarray) -> None:
    b = write_bundle(tmp_path / "m", {"v": arr})
    assert list_variables(b.prefix) == {"v": (arr.dtype, arr.shape)}
    np.testing.assert_array_equal(read_variables(b.prefix)["v"], arr)


def test_big_endian_bundle_is_returned_little_endian(tmp_path: Path) -> None:
    b = write_bundle(tmp_path / "m", {"k": LSTM_VARS["rnn/lstm_cell/kernel"]}, big_endian=True)
    got = read_variables(b.prefix)["k"]
    assert got.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(got, LSTM_VARS["rnn/lstm_cell/kernel"])


def test_bfloat16_is_widened_exactly(tmp_path: Path) -> None:
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    off_crc = masked(crc32c_bitwise(bits.tobytes()))
    prefix = tmp_path / "m"
    write_table(prefix.with_name("m.index"), [(b"", header_proto(1)), (b"b", entry_proto(14, (4,), 0, 0, 8, off_crc))])
    prefix.with_name("m.data-00000-of-00001").write_bytes(bits.tobytes())
    assert list_variables(prefix) == {"b": (np.dtype("<f4"), (4,))}
    np.testing.assert_array_equal(read_variables(prefix)["b"], values)


def test_many_blocks_restarts_and_shards(tmp_path: Path) -> None:
    tensors = {f"layer_{i:03d}/cell/kernel": RNG.standard_normal((i % 5 + 1, 3)).astype(np.float32) for i in range(150)}
    b = write_bundle(tmp_path / "m", tensors, num_shards=3, block_size=200, restart_interval=3)
    listing = list_variables(b.prefix)
    assert list(listing) == sorted(tensors)
    got = read_variables(b.prefix, ["layer_149/cell/kernel", "layer_000/cell/kernel", "layer_077/cell/kernel"])
    assert list(got) == ["layer_149/cell/kernel", "layer_000/cell/kernel", "layer_077/cell/kernel"]
    for name, arr in got.items():
        np.testing.assert_array_equal(arr, tensors[name])
    all_values = read_variables(b.prefix)
    assert all(np.array_equal(all_values[n], tensors[n]) for n in tensors)


def test_partitioned_variable_is_listed_once_and_assembled(tmp_path: Path) -> None:
    kernel = RNG.standard_normal((10, 8)).astype(np.float32)
    b = write_bundle(tmp_path / "m", {"bias": np.ones(8, np.float32)}, partitioned={"kernel": (kernel, 3)})
    assert list_variables(b.prefix) == {"bias": (np.dtype("<f4"), (8,)), "kernel": (np.dtype("<f4"), (10, 8))}
    np.testing.assert_array_equal(read_variables(b.prefix, ["kernel"])["kernel"], kernel)


def test_missing_slice_is_reported(tmp_path: Path) -> None:
    kernel = RNG.standard_normal((4, 2)).astype(np.float32)
    full = entry_proto(1, (4, 2), 0, 0, 0, None, [[(0, 2), (0, -1)], [(2, 2), (0, -1)]])
    part = kernel[:2].tobytes()
    part_entry = entry_proto(1, (2, 2), 0, 0, len(part), masked(crc32c_bitwise(part)))
    prefix = tmp_path / "m"
    items = [(b"", header_proto(1)), (b"kernel", full), (slice_key("kernel", [(0, 2), (0, -1)]), part_entry)]
    write_table(prefix.with_name("m.index"), items)
    prefix.with_name("m.data-00000-of-00001").write_bytes(part)
    msg = raises_naming(prefix.with_name("m.index"), read_variables, prefix)
    assert "slice" in msg


def test_tf2_object_graph_keys_and_string_entry(tmp_path: Path) -> None:
    tensors = {
        "layer_with_weights-0/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE": LSTM_VARS["rnn/lstm_cell/kernel"],
        "layer_with_weights-0/cell/bias/.ATTRIBUTES/VARIABLE_VALUE": LSTM_VARS["rnn/lstm_cell/bias"],
        "save_counter/.ATTRIBUTES/VARIABLE_VALUE": np.array(1, np.int64),
    }
    b = write_bundle(tmp_path / "ckpt-1", tensors, strings={"_CHECKPOINTABLE_OBJECT_GRAPH": b"\x0a\x00opaque"})
    listing = list_variables(b.prefix)
    assert listing["_CHECKPOINTABLE_OBJECT_GRAPH"] == (np.dtype(object), ())
    assert set(listing) == set(tensors) | {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    got = read_variables(b.prefix)  # bookkeeping strings are skipped when reading everything
    assert set(got) == set(tensors)
    msg = raises_naming(b.index, read_variables, b.prefix, ["_CHECKPOINTABLE_OBJECT_GRAPH"])
    assert "DT_STRING" in msg
    msg = raises_naming(b.index, read_variables, b.prefix, ["layer_with_weights-0/cell/kernel"])
    assert "layer_with_weights-0/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE" in msg


def test_resource_and_unknown_dtypes_listed_but_refused(tmp_path: Path) -> None:
    prefix = tmp_path / "m"
    items = [
        (b"", header_proto(1)),
        (b"f8", entry_proto(24, (2,), 0, 0, 2, None)),
        (b"res", entry_proto(20, (), 0, 0, 0, None)),
        (b"weird", entry_proto(77, (1,), 0, 0, 1, None)),
    ]
    write_table(prefix.with_name("m.index"), items)
    prefix.with_name("m.data-00000-of-00001").write_bytes(b"\x00\x00")
    listing = list_variables(prefix)
    assert {k: v[0] for k, v in listing.items()} == dict.fromkeys(("f8", "res", "weird"), np.dtype(object))
    assert read_variables(prefix) == {}
    for name, tag in (("f8", "DT_FLOAT8_E5M2"), ("res", "DT_RESOURCE"), ("weird", "77")):
        assert tag in raises_naming(prefix.with_name("m.index"), read_variables, prefix, [name])


def test_reading_a_subset_touches_only_its_bytes(simple: Bundle) -> None:
    # Corrupt every other tensor's bytes: a subset read must neither notice nor care.
    data = bytearray(simple.shard(0).read_bytes())
    keep = "rnn/lstm_cell/bias"
    _, k_off, k_size = simple.offsets[keep]
    for i in range(len(data)):
        if not k_off <= i < k_off + k_size:
            data[i] ^= 0xFF
    simple.shard(0).write_bytes(bytes(data))
    got = read_variables(simple.prefix, [keep])
    assert list(got) == [keep]
    np.testing.assert_array_equal(got[keep], LSTM_VARS[keep])


def test_resolve_prefix_forms(simple: Bundle) -> None:
    p = simple.prefix
    assert resolve_prefix(p) == p
    assert resolve_prefix(simple.index) == p
    assert resolve_prefix(simple.shard(0)) == p
    assert resolve_prefix(p.parent) == p
    assert list_variables(simple.shard(0)) == list_variables(p.parent)


def test_resolve_prefix_uses_checkpoint_state_file(tmp_path: Path) -> None:
    write_bundle(tmp_path / "ckpt-1", {"a": np.zeros(1, np.float32)})
    write_bundle(tmp_path / "ckpt-2", {"a": np.ones(1, np.float32)})
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-1"\n')
    assert resolve_prefix(tmp_path) == tmp_path / "ckpt-2"
    # A state file copied from another machine names an absolute path that no longer exists.
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/train/ckpt-1"\n')
    assert resolve_prefix(tmp_path) == tmp_path / "ckpt-1"
    np.testing.assert_array_equal(read_variables(tmp_path)["a"], np.zeros(1, np.float32))


# ---------------------------------------------------------------------------
# Synthetic bundles: failures
# ---------------------------------------------------------------------------


def test_missing_index(tmp_path: Path) -> None:
    raises_naming(tmp_path / "nothing.index", list_variables, tmp_path / "nothing")


@pytest.mark.parametrize("keep", [0, 10, 47, -1, -5, -48, -49, -60])
def test_truncated_index(simple: Bundle, keep: int) -> None:
    data = simple.index.read_bytes()
    simple.index.write_bytes(data[:keep])
    msg = raises_naming(simple.index, list_variables, simple.prefix)
    assert "expected" in msg


@pytest.mark.slow
def test_every_truncation_and_byte_flip_of_the_index_is_a_weight_file_error(simple: Bundle) -> None:
    data = simple.index.read_bytes()
    for n in range(len(data)):
        simple.index.write_bytes(data[:n])
        with pytest.raises(WeightFileError):
            list_variables(simple.prefix)
    for i in range(len(data)):
        corrupt = bytearray(data)
        corrupt[i] ^= 0x5A
        simple.index.write_bytes(bytes(corrupt))
        try:
            read_variables(simple.prefix)
        except WeightFileError as exc:
            assert simple.index.name in str(exc) or simple.prefix.name in str(exc)


@pytest.mark.slow
def test_fuzzed_entries_with_valid_block_checksums_only_raise_weight_file_error(tmp_path: Path) -> None:
    # Byte flips in the raw index are mostly caught by block crcs; rebuild the table after mutating the
    # entry protobufs so the varint/protobuf/shape/slice decoding is exercised too.
    kernel = RNG.standard_normal((6, 4)).astype(np.float32)
    base = write_bundle(tmp_path / "base", LSTM_VARS, partitioned={"part": (kernel, 2)})
    items = list(tfbundle._table_items(base.index.read_bytes()))
    rng = np.random.default_rng(7)
    prefix = tmp_path / "base"
    for _ in range(400):
        mutated = []
        for key, value in items:
            v = bytearray(value)
            if v and rng.random() < 0.5:
                for _ in range(int(rng.integers(1, 4))):
                    v[int(rng.integers(len(v)))] = int(rng.integers(256))
            if rng.random() < 0.1:
                v = v[: int(rng.integers(len(v) + 1))]
            mutated.append((key, bytes(v)))
        write_table(prefix.with_name("base.index"), mutated)
        try:
            read_variables(prefix)
        except WeightFileError as exc:
            assert "base" in str(exc)


def test_bad_magic(simple: Bundle) -> None:
    data = bytearray(simple.index.read_bytes())
    data[-1] ^= 0x01
    simple.index.write_bytes(bytes(data))
    assert "magic" in raises_naming(simple.index, list_variables, simple.prefix)


def test_corrupt_index_block_checksum(simple: Bundle) -> None:
    data = bytearray(simple.index.read_bytes())
    data[3] ^= 0x01  # inside the first data block
    simple.index.write_bytes(bytes(data))
    assert "checksum" in raises_naming(simple.index, list_variables, simple.prefix)


def test_bad_varint_in_entry(tmp_path: Path) -> None:
    prefix = tmp_path / "m"
    write_table(prefix.with_name("m.index"), [(b"", header_proto(1)), (b"v", b"\x08" + b"\xff" * 12)])
    assert "varint" in raises_naming(prefix.with_name("m.index"), list_variables, prefix)


def test_snappy_blocks_are_refused(tmp_path: Path) -> None:
    b = write_bundle(tmp_path / "m", {"a": np.zeros(2, np.float32)}, compression=1)
    assert "snappy" in raises_naming(b.index, list_variables, b.prefix)


def test_newer_bundle_version_is_refused(tmp_path: Path) -> None:
    prefix = tmp_path / "m"
    write_table(prefix.with_name("m.index"), [(b"", header_proto(1, min_consumer=7))])
    assert "consumer" in raises_naming(prefix.with_name("m.index"), list_variables, prefix)


def test_missing_header(tmp_path: Path) -> None:
    prefix = tmp_path / "m"
    write_table(prefix.with_name("m.index"), [(b"v", entry_proto(1, (1,), 0, 0, 4, None))])
    assert "header" in raises_naming(prefix.with_name("m.index"), list_variables, prefix)


def test_truncated_data(simple: Bundle) -> None:
    data = simple.shard(0).read_bytes()
    simple.shard(0).write_bytes(data[: len(data) - 3])
    last = max(simple.offsets, key=lambda n: simple.offsets[n][1])
    msg = raises_naming(simple.shard(0), read_variables, simple.prefix, [last])
    assert "truncated" in msg


def test_flipped_data_byte_fails_crc(simple: Bundle) -> None:
    _, off, _ = simple.offsets["rnn/lstm_cell/kernel"]
    data = bytearray(simple.shard(0).read_bytes())
    data[off + 5] ^= 0x10
    simple.shard(0).write_bytes(bytes(data))
    msg = raises_naming(simple.shard(0), read_variables, simple.prefix, ["rnn/lstm_cell/kernel"])
    assert "crc32c" in msg and "rnn/lstm_cell/kernel" in msg


def test_entry_size_mismatch(tmp_path: Path) -> None:
    prefix = tmp_path / "m"
    write_table(prefix.with_name("m.index"), [(b"", header_proto(1)), (b"v", entry_proto(1, (3,), 0, 0, 8, None))])
    prefix.with_name("m.data-00000-of-00001").write_bytes(bytes(12))
    assert "12 bytes" in raises_naming(prefix.with_name("m.index"), read_variables, prefix)


def test_missing_data_shard(tmp_path: Path) -> None:
    b = write_bundle(tmp_path / "m", {"a": np.zeros(2, np.float32), "b": np.ones(2, np.float32)}, num_shards=2)
    b.shard(1, 2).unlink()
    np.testing.assert_array_equal(read_variables(b.prefix, ["a"])["a"], np.zeros(2))  # shard 0 is still fine
    msg = raises_naming(b.shard(1, 2), read_variables, b.prefix)
    assert "shard 1 of 2" in msg


def test_shard_id_out_of_range(tmp_path: Path) -> None:
    prefix = tmp_path / "m"
    write_table(prefix.with_name("m.index"), [(b"", header_proto(1)), (b"v", entry_proto(1, (1,), 4, 0, 4, None))])
    assert "shard" in raises_naming(prefix.with_name("m.index"), list_variables, prefix)


def test_directory_with_two_checkpoints_is_ambiguous(tmp_path: Path) -> None:
    write_bundle(tmp_path / "a.ckpt", {"x": np.zeros(1, np.float32)})
    write_bundle(tmp_path / "b.ckpt", {"x": np.zeros(1, np.float32)})
    msg = raises_naming(tmp_path, list_variables, tmp_path)
    assert "a.ckpt.index" in msg and "b.ckpt.index" in msg


def test_empty_directory(tmp_path: Path) -> None:
    assert "no *.index" in raises_naming(tmp_path, resolve_prefix, tmp_path)


def test_state_file_naming_a_missing_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "gone.ckpt"\n')
    raises_naming(tmp_path / "checkpoint", resolve_prefix, tmp_path)


def test_non_checkpoint_files(tmp_path: Path) -> None:
    npz = tmp_path / "weights.npz"
    np.savez(npz, a=np.zeros(3))
    assert "without a matching .index" in raises_naming(npz, list_variables, npz)
    fake_index = tmp_path / "notes.index"
    fake_index.write_text("this is not a LevelDB table, just some text that is long enough to hold a footer\n")
    assert "magic" in raises_naming(fake_index, read_variables, fake_index)


def test_v1_single_file_checkpoint_gets_a_specific_message(tmp_path: Path) -> None:
    v1 = tmp_path / "model.ckpt"
    write_table(v1, [(b"", b"\x0a\x00")])
    assert "V1" in raises_naming(v1, list_variables, v1)


def test_unknown_name_suggests_close_matches(simple: Bundle) -> None:
    msg = raises_naming(simple.index, read_variables, simple.prefix, ["rnn/lstm_cell/kernal"])
    assert "rnn/lstm_cell/kernel" in msg


# ---------------------------------------------------------------------------
# Real TensorFlow-written checkpoints (tests/fixtures/tf/make_fixtures.py, group B and C3)
# ---------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "tf"


# Written by make_fixtures.py group B (TF 2.21 Saver / tf.train.Checkpoint) and C3 (Keras 3 on TF).
REAL_IDS = ["ckpt_tf1_peephole_proj", "ckpt_tf1_sharded", "ckpt_tf2_keras", "ckpt_tf2_keras3", "ckpt_tflite_cell"]


@functools.cache
def manifest_entry(case: str) -> dict:
    return json.loads((FIXTURES / "manifest.json").read_text())["cases"][case]


def expected_weights(case: str) -> dict[str, np.ndarray]:
    """Checkpoint key -> value, from the case's .weights.npz and the manifest's key mapping."""
    entry = manifest_entry(case)
    npz = FIXTURES / entry.get("same_weights_as", f"{case}.weights.npz")
    with np.load(npz, allow_pickle=False) as z:
        values = {k: z[k] for k in z.files}
    if "keys_for_weights" in entry:
        return {entry["keys_for_weights"][k]: v for k, v in values.items()}
    return {f"{entry['variable_scope']}/{k}": v for k, v in values.items()}


@pytest.mark.parametrize("case", REAL_IDS)
def test_real_listing_matches_tf_list_variables(case: str) -> None:
    entry = manifest_entry(case)
    tf_listing = entry.get("checkpoint_variables") or entry["checkpoint_keys"]  # tf.train.list_variables output
    listing = list_variables(FIXTURES / entry["checkpoint_prefix"])
    assert list(listing) == sorted(listing)
    assert {n: tuple(s) for n, s in tf_listing} == {n: shape for n, (_, shape) in listing.items()}
    for name, (dtype, _) in listing.items():
        expected = np.dtype(object) if name == "_CHECKPOINTABLE_OBJECT_GRAPH" else None
        assert dtype == expected if expected is not None else dtype.kind in "fiu", (name, dtype)


@pytest.mark.parametrize("case", REAL_IDS)
def test_real_values_equal_npz_exactly(case: str) -> None:
    expected = expected_weights(case)
    prefix = FIXTURES / manifest_entry(case)["checkpoint_prefix"]
    listing = list_variables(prefix)
    for name, arr in expected.items():
        assert listing[name] == (arr.dtype, arr.shape), name
    got = read_variables(prefix, list(expected))
    assert list(got) == list(expected)
    for name, arr in expected.items():
        np.testing.assert_array_equal(got[name], arr, strict=True)
    everything = read_variables(prefix)
    assert set(everything) == {n for n, (dt, _) in listing.items() if dt != np.dtype(object)}
    for name, arr in expected.items():
        assert everything[name].tobytes() == arr.tobytes()


@pytest.mark.parametrize("case", REAL_IDS)
def test_real_path_forms_resolve_to_the_same_prefix(case: str) -> None:
    prefix = FIXTURES / manifest_entry(case)["checkpoint_prefix"]
    data_files = sorted(prefix.parent.glob(prefix.name + ".data-*"))
    assert data_files
    for form in (prefix, prefix.with_name(prefix.name + ".index"), data_files[0], prefix.parent):
        assert resolve_prefix(form) == prefix, form


def test_real_partitioned_checkpoint_hides_slice_keys() -> None:
    entry = manifest_entry("ckpt_tf1_sharded")
    listing = list_variables(FIXTURES / entry["checkpoint_prefix"])
    assert not any("part_" in n for n in listing)
    assert any("/part_" in n for n, _ in entry["graph_partitions"])  # really partitioned in the graph


@pytest.mark.parametrize("case", REAL_IDS)
def test_real_checkpoint_copy_with_flipped_byte_or_truncation(tmp_path: Path, case: str) -> None:
    src = FIXTURES / manifest_entry(case)["checkpoint_prefix"]
    expected = expected_weights(case)
    name = max(expected, key=lambda n: expected[n].size)
    for f in src.parent.glob(src.name + ".*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    prefix = tmp_path / src.name
    data = min(tmp_path.glob(src.name + ".data-*"))
    original = data.read_bytes()
    flipped = bytearray(original)
    hit = original.find(expected[name].tobytes()[:16])
    assert hit >= 0
    flipped[hit + 3] ^= 0x01
    data.write_bytes(bytes(flipped))
    assert "crc32c" in raises_naming(data, read_variables, prefix, [name])
    data.write_bytes(original[: len(original) // 2])
    raises_naming(data, read_variables, prefix)
    index = prefix.with_name(prefix.name + ".index")
    index.write_bytes(index.read_bytes()[:-10])
    raises_naming(index, list_variables, prefix)
