"""Deployment-target checks: what a model uses that a runtime (TFLite, TFLite Micro, Ethos-U) cannot run.

The registry names, per target, the module and table holding its rules; a target module is imported on first
use (so that listing targets loads no rules), and no target module imports this one.
"""

from __future__ import annotations

import importlib

from lstmgen.config import TARGETS
from lstmgen.errors import ConfigError
from lstmgen.targets.checks import Problem, Rule
from lstmgen.tflite.records import ModelRecord

TARGET_NAMES: dict[str, str] = {
    "tflite": "TensorFlow Lite",
    "micro": "TensorFlow Lite Micro (TFLM)",
    "ethos-u": "Arm Ethos-U (vela)",
}

# Target -> "module:table" listing what it cannot run ("" = no rules).
REGISTRY: dict[str, str] = {
    "tflite": "",
    "micro": "lstmgen.targets.micro:MICRO_RULES",
    "ethos-u": "lstmgen.targets.ethos_u:ETHOS_U_RULES",
}


def rules_for(target: str) -> tuple[Rule, ...]:
    """The rule table of a target."""
    if target not in REGISTRY:
        raise ConfigError(f"target {target!r} is unknown; choose one of {', '.join(TARGETS)}.")
    module, _, table = REGISTRY[target].partition(":")
    rules: tuple[Rule, ...] = getattr(importlib.import_module(module), table) if module else ()
    return rules


def find_problems(model: ModelRecord, target: str) -> list[Problem]:
    """Every rule of `target` the model breaks, in table order."""
    problems = []
    for rule in rules_for(target):
        where = rule.check(model)
        if where:
            problems.append(Problem(target, rule.feature, tuple(where), rule.message))
    return problems


def check_target(model: ModelRecord, target: str) -> list[str]:
    """Human-readable problems that keep `model` from running on `target`; empty = OK."""
    return [str(p) for p in find_problems(model, target)]
