"""lstmgen: write verified TFLite UNIDIRECTIONAL_SEQUENCE_LSTM models from hyperparameters and weights.

The public API is a lazy facade: `import lstmgen` loads nothing else; each name below imports its module
on first use (so `lstmgen --help` and scripts that need one function stay fast).

Example:
    >>> import lstmgen                                                       # doctest: +SKIP
    >>> result = lstmgen.build(None, "lstm.tflite", num_units=64, input_size=32)   # doctest: +SKIP
    >>> lstmgen.inspect("lstm.tflite")["num_units"]                          # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from lstmgen.version import __version__ as __version__  # the one eager import: a constant

# Public name -> "module:attribute", or a module for a whole namespace. These names are the stable API
# (tests/test_facade.py pins them); every other module is private and may move.
_EXPORTS: dict[str, str] = {
    "build": "lstmgen.api:build",
    "verify": "lstmgen.api:verify",
    "run": "lstmgen.api:run",
    "inspect": "lstmgen.api:inspect",
    "export": "lstmgen.api:export",
    "BuildResult": "lstmgen.api:BuildResult",
    "load_weights": "lstmgen.weights:load_weights",
    "CellConfig": "lstmgen.config:CellConfig",
    "errors": "lstmgen.errors",
}
__all__ = ["BuildResult", "CellConfig", "build", "errors", "export", "inspect", "load_weights", "run", "verify"]

if TYPE_CHECKING:
    from lstmgen import errors
    from lstmgen.api import BuildResult, build, export, inspect, run, verify
    from lstmgen.config import CellConfig
    from lstmgen.weights import load_weights


def _resolve(name: str) -> Any:
    module, _, attribute = _EXPORTS[name].partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lstmgen' has no attribute {name!r}")
    value = _resolve(name)
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """Keeps the facade's functions bound when a same-named submodule (lstmgen.build, .run, .export) loads.

    Importing a submodule binds it as an attribute of its package, which would replace `lstmgen.build` the
    function by `lstmgen.build` the module. Code that needs the module imports from it (`from lstmgen.build
    import BuildResult`) or takes it from sys.modules / importlib.import_module.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _EXPORTS and _EXPORTS[name] != value.__name__:
            return  # a submodule named like a public function: the name stays the function (resolved lazily)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
