"""Adapters over the TFLite interpreters (LiteRT, tflite-runtime, TFLite Micro)."""

# The runtimes' names live here, with no imports, so that the CLI can list them without loading one.
# runtime name -> (interpreter module, distributions whose version we report)
RUNTIMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "litert": ("ai_edge_litert.interpreter", ("ai-edge-litert",)),
    "tflite-runtime": ("tflite_runtime.interpreter", ("tflite-runtime",)),
    "tensorflow": ("tensorflow.lite.python.interpreter", ("tensorflow", "tensorflow-cpu")),
}
# How to install each runtime, for the message when it is missing.
INSTALL_HINTS: dict[str, str] = {
    "litert": "pip install ai-edge-litert (the default)",
    "tflite-runtime": "pip install 'lstmgen[tflite-runtime]' (tflite-runtime 2.14 with numpy < 2, CPython 3.9-3.11)",
    "tensorflow": "pip install tensorflow-cpu",
}
# Other names users type for a runtime: the package's own name.
RUNTIME_ALIASES: dict[str, str] = {"ai-edge-litert": "litert"}
RUNTIME_CHOICES: tuple[str, ...] = ("auto", *RUNTIMES, *RUNTIME_ALIASES)
# What --runtime accepts: the TFLite interpreters plus "micro", TensorFlow Lite Micro (runtimes/micro.py).
CLI_RUNTIME_CHOICES: tuple[str, ...] = (*RUNTIME_CHOICES, "micro")
# `run --runtime emulate[-litert|-tflm]`: no interpreter, lstmgen's bit-exact emulation of an integer kernel
# (runtimes/emulated.py); run only, since verify compares interpreters with that emulation.
EMULATE_CHOICES: tuple[str, ...] = ("emulate", "emulate-litert", "emulate-tflm")
