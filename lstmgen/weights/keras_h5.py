"""Opening Keras HDF5 files (.weights.h5, full-model .h5, a .keras archive's weights) and finding their LSTM cells."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lstmgen import guard
from lstmgen.errors import LstmgenError, WeightFileError
from lstmgen.weights.keras_cells import (
    _CELL_SEGMENT,
    ROLES,
    _bidirectional_names,
    _Cell,
    _decode,
    _is_lstm_recurrent,
    _layer_path,
    _natural_key,
    _shape,
)
from lstmgen.weights.keras_topology import _attach_configs, _listed
from lstmgen.weights.library_errors import raised_in
from lstmgen.weights.zipped import stored_member


def _import_h5py(path: Path) -> Any:
    try:
        import h5py
    except ImportError:
        raise WeightFileError(
            f"{path}: reading Keras .h5/.keras files needs the h5py package, which is not installed. "
            "Install it with: pip install 'lstmgen[h5]' (or save the weights as .npz: kernel, "
            "recurrent_kernel, bias)."
        ) from None
    return h5py


def _h5_datasets(h5: Any) -> list[str]:
    import h5py  # imported by now: h5 is open

    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(f"/{name} {_shape(obj)}")

    h5.visititems(visit)
    return found


def _keras3_cells(h5: Any) -> list[_Cell]:
    """Keras 3 (and tf_keras' .weights.h5) layout: <layer path>/cell/vars/{0,1,2}, indexed not named."""
    import h5py  # imported by now: h5 is open

    cells = []
    groups: list[tuple[str, Any]] = []

    def visit(name: str, obj: Any) -> None:
        if name == "vars" or name.endswith("/vars"):
            groups.append((name, obj))

    h5.visititems(visit)
    for name, group in groups:
        if not isinstance(group, h5py.Group) or "0" not in group or "1" not in group:
            continue
        ds = {k: group[k] for k in group if isinstance(group[k], h5py.Dataset)}
        k, r = ds.get("0"), ds.get("1")
        if k is None or r is None or len(k.shape) != 2 or set(ds) - {"0", "1", "2"} or not _is_lstm_recurrent(r):
            continue
        segs = name.split("/")[:-1]
        if segs and segs[-1] == "cell":
            segs = segs[:-1]
        layer_vars = "/".join([*segs, "vars"])
        by_path = "/".join(s for s in segs if s != "layers")
        # Keras 3 keys groups by class and position ('lstm', 'lstm_1'); each group's vars record the
        # layer's Keras name ('encoder', or 'lstm_2' in a session that made models before): name by that.
        canonical = "/".join(_keras3_names(h5, segs))
        arrays = {role: ds[i] for role, i in zip(ROLES, ("0", "1", "2"), strict=True) if i in ds}
        aliases = {name, "/".join(segs), by_path}
        if layer_vars in h5 and "name" in h5[layer_vars].attrs:  # the Keras layer name, e.g. forward_lstm
            keras_name = _decode(h5[layer_vars].attrs["name"])
            aliases |= {keras_name, "/".join([*canonical.split("/")[:-1], keras_name])}
        cell = _Cell(canonical, f"/{name}/{{0,1,2}}", arrays, aliases - {canonical}, path=by_path)
        cell.guessed = canonical == by_path and not _named(h5, layer_vars)
        cells.append(cell)
    return cells


def _other_weights(h5: Any, cells: list[_Cell]) -> list[str]:
    """Layers of a Keras 3 / tf_keras weights file that hold weights but are not the LSTM cells ('dense')."""
    import h5py  # imported by now: h5 is open

    if _is_classic(h5):
        return []
    lstm = {_layer_path(c) for c in cells if c.path} | {c.path for c in cells if c.path}
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        vars_group = isinstance(obj, h5py.Group) and name.split("/")[-1] == "vars" and name != "vars"
        if vars_group and any(isinstance(obj[k], h5py.Dataset) for k in obj):
            segs = [s for s in name.split("/")[:-1] if s != "layers"]
            if segs and segs[-1] == "cell":
                segs = segs[:-1]
            path = "/".join(segs)
            if path and path not in lstm and not any(path.startswith(f"{p}/") for p in lstm):
                found.append(path)

    h5.visititems(visit)
    return sorted(set(found), key=_natural_key)


def _named(h5: Any, vars_path: str) -> bool:
    return vars_path in h5 and "name" in h5[vars_path].attrs


def _keras3_names(h5: Any, segs: list[str]) -> list[str]:
    """Each layer segment of a Keras 3 weights path by its Keras name (its vars' 'name' attribute);
    a Bidirectional's forward_layer/backward_layer keep their attribute names."""
    out, here = [], []
    for seg in segs:
        here.append(seg)
        if seg == "layers":
            continue
        vars_path = "/".join([*here, "vars"])
        if seg not in ("forward_layer", "backward_layer") and vars_path in h5 and "name" in h5[vars_path].attrs:
            out.append(_decode(h5[vars_path].attrs["name"]))
        else:
            out.append(seg)
    return out


def _attr_list(group: Any, name: str) -> list[str]:
    """A list attribute as Keras 2 writes it: whole, or split into name0, name1, ... when over 64 KB."""
    if name in group.attrs:
        return [_decode(v) for v in group.attrs[name]]
    out: list[str] = []
    i = 0
    while f"{name}{i}" in group.attrs:
        out.extend(_decode(v) for v in group.attrs[f"{name}{i}"])
        i += 1
    return out


def _is_classic(h5: Any) -> bool:
    root = h5.get("model_weights", h5)
    return "layer_names" in root.attrs or "layer_names0" in root.attrs


def _classic_cells(h5: Any) -> list[_Cell]:
    """tf.keras 2 / Keras 2 layout: [model_weights/]<layer>/<weight name> listed in the layer's weight_names."""
    root = h5.get("model_weights", h5)
    # Keras 3 writes its legacy .h5 weight names as variable paths, led by the model's name
    # ('sequential/enc/lstm_cell/kernel' in layer 'enc'); tf.keras 2 starts them with the layer's.
    keras3 = _decode(root.attrs.get("keras_version", h5.attrs.get("keras_version", ""))).startswith("3.")
    found: list[tuple[list[str], str, dict[str, Any], str]] = []
    for layer in _attr_list(root, "layer_names"):
        if layer not in root:
            continue
        group = root[layer]
        groups: dict[str, dict[str, str]] = {}
        for wn in _attr_list(group, "weight_names"):
            prefix, _, leaf = wn.rpartition("/")
            leaf = leaf.split(":", 1)[0]
            if leaf in ROLES:
                groups.setdefault(prefix, {})[leaf] = wn
        for prefix, roles in groups.items():
            if "recurrent_kernel" not in roles or any(wn not in group for wn in roles.values()):
                continue
            if not _is_lstm_recurrent(group[roles["recurrent_kernel"]]):  # a GRU or SimpleRNN layer
                continue
            segs = [s for s in prefix.split("/") if s]
            if segs and _CELL_SEGMENT.match(segs[-1]):
                segs = segs[:-1]
            if keras3 and len(segs) >= 2 and segs[1] == layer:
                segs = segs[2:]
            elif segs and segs[0] == layer:  # 'lstm/lstm_cell/kernel:0' in layer 'lstm'
                segs = segs[1:]
            arrays = {r: group[wn] for r, wn in roles.items()}
            found.append(([layer, *segs], f"{group.name}/{prefix}/{{kernel,recurrent_kernel,bias}}:0", arrays, prefix))
    paths = _bidirectional_names([f[0] for f in found])
    cells = []
    for rank, (segs, (raw, where, arrays, prefix)) in enumerate(zip(paths, found, strict=True)):
        name = "/".join(segs)
        aliases = {"/".join(raw), prefix, raw[-1]} - {name}
        # layer_names lists the layers in model order (Keras loads a legacy .h5 by it): that order is kept.
        cells.append(_Cell(name, where, arrays, aliases, rank=rank))
    return cells


def _h5_config(h5: Any, path: Path) -> dict[str, Any] | None:
    """The classic full-model .h5 'model_config' attribute (tf.keras 2 model.save('x.h5'))."""
    if "model_config" not in h5.attrs:
        return None
    try:
        config = json.loads(_decode(h5.attrs["model_config"]))
    except (ValueError, RecursionError) as exc:  # RecursionError: a nesting bomb
        raise WeightFileError(
            f"{path}: the 'model_config' attribute is not valid JSON ({exc}). Re-save the model with Keras."
        ) from None
    if isinstance(config, Mapping) and isinstance(config.get("config"), list):
        # Keras 2.0-2.2 wrote a Sequential's config as its bare list of layers.
        return {**config, "config": {"layers": config["config"]}}
    return config if isinstance(config, dict) else None


def _open_cells(path: Path) -> tuple[Any, io.IOBase | None, list[_Cell], str]:
    """Open a Keras .h5/.keras file and find its LSTM cells (datasets still unread).

    Returns the h5py File, the file object it reads (a .keras archive's model.weights.h5; None for an
    .h5 opened by name), the cells and the source name; the caller closes the first two.
    """
    h5py = _import_h5py(path)
    config: dict[str, Any] | None = None
    member: io.IOBase | None = None
    if path.name.lower().endswith(".keras"):
        member, config = _read_keras_zip(path)  # h5py reads a file object: nothing is extracted to disk
        handle: Any = member
        where = f"{path} (its model.weights.h5)"
    else:
        handle, where = path, str(path)
    try:
        h5 = h5py.File(handle, "r")
    except BaseException as exc:
        if member is not None:
            member.close()
        if isinstance(exc, OSError):
            raise WeightFileError(
                f"{where} is not a readable HDF5 file ({exc}): it is truncated, corrupt or not HDF5. Expected "
                "the output of Keras' model.save_weights('x.weights.h5') or model.save('x.keras' / 'x.h5'); "
                "save it again."
            ) from None
        raise
    try:
        return h5, member, _find_cells(h5, config, path, where), str(path)
    except BaseException:
        h5.close()
        if member is not None:
            member.close()
        raise


def _find_cells(h5: Any, config: dict[str, Any] | None, path: Path, where: str) -> list[_Cell]:
    guard.h5_contained(h5, where)  # nothing outside the file's own bytes, no bombs
    if config is None:
        config = _h5_config(h5, path)
    classic = _is_classic(h5)
    cells = _classic_cells(h5) if classic else _keras3_cells(h5)
    cells = _listed(_attach_configs(cells, config, str(path)))
    if not cells:
        found = _h5_datasets(h5)
        shown = "; ".join(found[:12]) + ("; ..." if len(found) > 12 else "") if found else "no datasets"
        raise WeightFileError(
            f"{where}: no Keras LSTM weights found. Expected a layer with kernel [input, 4*units], "
            "recurrent_kernel [units, 4*units] and bias [4*units] (Keras 3: layers/<name>/cell/vars/0,1,2; "
            f"tf.keras 2: <name>/<name>/lstm_cell/kernel:0, ...). Found: {shown}. Check that the file "
            "comes from a model with a keras.layers.LSTM layer."
        )
    return cells


def _read_keras_zip(path: Path) -> tuple[io.IOBase, dict[str, Any] | None]:
    """config.json and model.weights.h5 from a .keras archive: the weights as a file object (close it).

    Keras stores model.weights.h5 uncompressed: it is then read in place, dataset by dataset, after
    its CRC-32 is checked; a compressed one is decompressed into memory.
    """
    weights: io.IOBase | None = None
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "model.weights.h5" not in names:
                raise WeightFileError(
                    f"{path}: this .keras archive has no model.weights.h5 (found: {', '.join(names) or 'nothing'}). "
                    "Expected a file written by Keras 3 model.save('x.keras'); save it again."
                )
            info = guard.zip_member_size(zf, "model.weights.h5", str(path))
            weights = stored_member(path, info) or io.BytesIO(guard.zip_member(zf, "model.weights.h5", str(path)))
            raw = guard.zip_member(zf, "config.json", str(path), guard.TEXT_LIMIT) if "config.json" in names else None
    except BaseException as exc:
        if weights is not None:
            weights.close()
        # zipfile's own errors on a damaged archive: a bad or cut-off directory (BadZipFile, EOFError, OSError),
        # ZIP64 it was not told to expect (LargeZipFile), a compression method it lacks (NotImplementedError);
        # zipped.stored_member raises BadZipFile (and its I/O OSError) for a damaged member. Only where those two
        # raised them: the same classes from lstmgen's other code are bugs (exit 70).
        broken = (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile, NotImplementedError)
        damaged = raised_in(exc, "zipfile") or raised_in(exc, "lstmgen.weights.zipped")
        if isinstance(exc, broken) and damaged and not isinstance(exc, LstmgenError):
            raise WeightFileError(
                f"{path} is not a readable .keras archive ({exc}): it is truncated or corrupt. Expected the zip "
                "file that Keras 3 model.save('x.keras') writes; save it again."
            ) from None
        raise
    assert weights is not None  # set, or the block raised
    if raw is None:
        return weights, None
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # closed on every path: a nested-too-deep config too
        weights.close()
        raise WeightFileError(
            f"{path}: config.json in the archive is not valid JSON ({exc}). Save the model again with Keras."
        ) from None
    return weights, config if isinstance(config, dict) else None
