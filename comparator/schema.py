"""Results as frozen dataclasses that serialise to the report schema of DESIGN.md.

Keys are part of a stable interface: extend, never rename.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA = "xframe-compare/report/1"


def _clean(value: Any) -> Any:
    """Plain JSON values: tuples become lists, NaN and infinities become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class _Serialisable:
    def to_dict(self) -> dict:
        return _clean(asdict(self))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Losses(_Serialisable):
    inference_before: float
    train_step: tuple[float, ...]
    inference_after: float
    fit_validation: tuple[float, ...] | None = None


@dataclass(frozen=True)
class State(_Serialisable):
    trainable_params: int
    frozen_params: int
    weights_changed: bool
    max_weight_delta: float
    bn_stats_changed: bool
    max_bn_stat_delta: float


@dataclass(frozen=True)
class Modes(_Serialisable):
    bn_layers: int
    bn_batch_stats: int
    dropout_layers: int
    dropout_active: int


@dataclass(frozen=True)
class RunResult(_Serialisable):
    id: str
    framework: str
    recipe: str
    description: str
    losses: Losses
    state: State
    modes: Modes
    seconds: float
    warnings: tuple[str, ...] = ()
    backend: str | None = None  # Keras's backend for Keras runs; None for PyTorch


@dataclass(frozen=True)
class Check(_Serialisable):
    name: str
    passed: bool
    value: float
    tolerance: float
    detail: str = ""


@dataclass(frozen=True)
class Equivalence(_Serialisable):
    a: str
    b: str
    equivalent: bool
    max_diff: float
    expected: bool = False
    reason: str = ""
    differences: tuple[str, ...] = ()
    max_weight_diff: float | None = None
    max_bn_stat_diff: float | None = None
    causes: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Report(_Serialisable):
    model: str
    scenario: str
    settings: dict
    environment: dict
    runs: tuple[RunResult, ...]
    references: dict = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    explanations: tuple[dict, ...] = ()
    equivalences: tuple[Equivalence, ...] = ()
    timings: dict = field(default_factory=dict)
    findings: tuple[str, ...] = ()
    # Runs that could not be measured: {"id", "framework", "backend", "recipe",
    # "status": "skipped" (an optional extra is missing) or "failed", "reason"}.
    unavailable_runs: tuple[dict, ...] = ()
    schema: str = SCHEMA

    def to_dict(self) -> dict:
        body = super().to_dict()
        ordered = {"schema": body.pop("schema")}
        ordered.update(body)
        return ordered

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def run(self, run_id: str) -> RunResult:
        for run in self.runs:
            if run.id == run_id:
                return run
        raise KeyError(run_id)

    @property
    def checks_passed(self) -> bool:
        return all(c.passed for c in self.checks)


def _build(cls, data: dict):
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        nested = {"losses": Losses, "state": State, "modes": Modes}.get(f.name)
        if nested is not None and cls is RunResult:
            value = _build(nested, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def report_from_dict(data: dict) -> Report:
    """Load a report written by to_dict (the inverse, for tools reading JSON)."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} report")
    body = dict(data)
    body["runs"] = tuple(_build(RunResult, r) for r in data.get("runs", []))
    body["checks"] = tuple(_build(Check, c) for c in data.get("checks", []))
    body["equivalences"] = tuple(_build(Equivalence, e) for e in data.get("equivalences", []))
    body["explanations"] = tuple(data.get("explanations", []))
    body["unavailable_runs"] = tuple(data.get("unavailable_runs", []))
    return _build(Report, body)


