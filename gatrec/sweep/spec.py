"""The search space of a sweep: a YAML file validated against the training and model configs.

Format (``gatrec/sweep/spaces/<model>.yaml`` are the shipped defaults)::

    params:                      # searched; a key is a TrainConfig field or a field of the model's config
      lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      n_layers: {type: int, low: 1, high: 4}
      loss: [bpr, bce]           # a list is short for {type: categorical, choices: [...]}
    fixed:                       # the same for every trial (the command line's --epochs overrides)
      epochs: 100
      eval_every: 5

Every bound and choice is checked by building the training config with it, so a range the model would
refuse (``dim: {low: 0}``) is reported before any trial runs, with the file, line and key.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gatrec import models
from gatrec.errors import DataError, invalid_file, yaml_line
from gatrec.train.config import TrainConfig

# TrainConfig fields a space may not set: they name the run rather than tune it.
NOT_SEARCHABLE = frozenset({"model", "model_params", "ks", "metric", "device", "seed"})


class Param(BaseModel):
    """One searched dimension, as Optuna's ``suggest_float`` / ``suggest_int`` / ``suggest_categorical``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"]
    low: float | None = Field(None, description="smallest value (float, int)")
    high: float | None = Field(None, description="largest value, included (float, int)")
    log: bool = Field(False, description="sample on a log scale (low must be > 0)")
    step: float | None = Field(None, gt=0, description="grid step (not with log)")
    choices: list[Any] | None = Field(None, min_length=1, description="the values (categorical)")

    @model_validator(mode="after")
    def _shape(self) -> Param:
        if self.type == "categorical":
            if self.choices is None:
                raise ValueError("a categorical parameter needs choices")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical parameter takes choices only, not low/high/log/step")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} parameter takes low/high, not choices")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs low and high")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, not {self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        if self.type == "int" and any(v is not None and v != int(v) for v in (self.low, self.high, self.step)):
            raise ValueError("an int parameter needs whole low, high and step")
        return self

    def bounds(self) -> list[tuple[str, Any]]:
        """(where, value) pairs that must each be a valid setting: the ends of a range, or every choice."""
        if self.type == "categorical":
            return [(f"choices[{i}]", v) for i, v in enumerate(self.choices or [])]
        cast = int if self.type == "int" else float
        return [("low", cast(self.low)), ("high", cast(self.high))]

    def suggest(self, trial: Any, name: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in (self.choices or [])
        return isinstance(value, int | float) and not isinstance(value, bool) and self.low <= value <= self.high


class _SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Param] = Field(min_length=1)
    fixed: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _short_categorical(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("params"), dict):
            data = {**data, "params": {k: {"type": "categorical", "choices": v} if isinstance(v, list) else v
                                       for k, v in data["params"].items()}}
        return data


class SearchSpace:
    """A validated space for one model: ``suggest(trial)`` draws a trial's settings; ``config(values)``
    turns settings into the TrainConfig the trial trains with."""

    def __init__(self, model: str, params: dict[str, Param], fixed: dict[str, Any], source: str):
        self.model, self.params, self.fixed, self.source = model, params, fixed, source

    def is_model_key(self, key: str) -> bool:
        return key in models.get(self.model).Config.model_fields

    def settings(self, values: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """TrainConfig input from flat ``values`` (fixed settings, then the trial's, then ``overrides``)."""
        out: dict[str, Any] = {"model": self.model, "model_params": {}}
        for key, val in {**self.fixed, **values, **(overrides or {})}.items():
            if self.is_model_key(key):
                out["model_params"][key] = val
            else:
                out[key] = val
        return out

    def config(self, values: dict[str, Any], overrides: dict[str, Any] | None = None) -> TrainConfig:
        return TrainConfig.build(self.settings(values, overrides), source=self.source)

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {name: p.suggest(trial, name) for name, p in self.params.items()}

    def defaults(self) -> dict[str, Any]:
        """What a trial with no tuning would use for each searched key (the model's and training defaults,
        after the fixed settings); keys whose default lies outside the space are left out."""
        cfg = self.config({})
        merged = {**cfg.model_dump(), **cfg.model_params}
        return {k: merged[k] for k, p in self.params.items() if k in merged and p.contains(merged[k])}


def default_space_file(model: str) -> Path:
    path = resources.files("gatrec.sweep") / "spaces" / f"{model}.yaml"
    if not path.is_file():
        shipped = sorted(p.name.removesuffix(".yaml") for p in (resources.files("gatrec.sweep") / "spaces")
                         .iterdir() if p.name.endswith(".yaml"))
        raise DataError(f"no default search space for model {model!r} (shipped: {', '.join(shipped)}); "
                        "pass --space FILE.yaml", field="model")
    return Path(str(path))


def load_space(model: str, path: str | Path | None = None) -> SearchSpace:
    """Read and validate the space in ``path`` (default: the one shipped for ``model``)."""
    if model not in models.names():
        raise DataError(f"unknown model {model!r}; available: {', '.join(models.names())}", field="model")
    path = Path(path) if path is not None else default_space_file(model)
    try:
        text = path.read_text()
        raw = yaml.safe_load(text)
    except OSError as exc:
        raise DataError(f"cannot read the search space: {exc.strerror}", file=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"invalid YAML: {getattr(exc, 'problem', exc)}", file=path,
                        line=mark.line + 1 if mark else None) from None
    if not isinstance(raw, dict):
        raise DataError("expected a mapping with 'params' (and optionally 'fixed')", file=path)
    for key in raw:
        if key not in _SpaceFile.model_fields:
            raise DataError(f"unknown section {key!r}; a space file has 'params' (searched) and 'fixed'",
                            file=path, line=yaml_line(text, [str(key)]), field=str(key))
    try:
        spec = _SpaceFile.model_validate(raw)
    except ValidationError as exc:
        raise invalid_file(exc, path, text) from None
    _check_against_configs(model, spec, path, text)
    return SearchSpace(model, spec.params, spec.fixed, str(path))


def _check_against_configs(model: str, spec: _SpaceFile, path: Path, text: str) -> None:
    model_fields = models.get(model).Config.model_fields
    train_fields = set(TrainConfig.model_fields) - NOT_SEARCHABLE
    known = sorted(train_fields | set(model_fields))
    for section, keys in (("params", spec.params), ("fixed", spec.fixed)):
        for key in keys:
            if key in spec.params and section == "fixed":
                raise DataError("set both in params and in fixed", file=path, line=yaml_line(text, [section, key]),
                                field=f"{section}.{key}")
            if key not in model_fields and key not in train_fields:
                why = ("is not searchable (set by the command line)" if key in NOT_SEARCHABLE
                       else f"is not a training setting nor a {model} parameter; known: {', '.join(known)}")
                raise DataError(f"unknown key {key!r}: it {why}", file=path, line=yaml_line(text, [section, key]),
                                field=f"{section}.{key}")
    space = SearchSpace(model, spec.params, spec.fixed, str(path))
    _try(space, {}, path, text, None)
    for key, param in spec.params.items():
        for where, value in param.bounds():
            loc = ["params", key, where.split("[")[0]]
            _try(space, {key: value}, path, text, loc, f"params.{key}.{where}")


def _try(space: SearchSpace, values: dict[str, Any], path: Path, text: str, loc: list[str] | None,
         field: str | None = None) -> None:
    """Build the training config from ``values``; an error points at ``loc`` in the file (None: at the
    fixed setting the config refused)."""
    try:
        TrainConfig.model_validate(space.settings(values))
    except ValidationError as exc:
        # The training config names its own field; the error points at the line of the space file instead.
        inner = invalid_file(exc, "config")
        message = str(inner).split(": ", 1)[1]
        if loc is None:
            key = (inner.field or "").split(".")[-1]
            loc, field = ["fixed", key], f"fixed.{key}" if key in space.fixed else "fixed"
        raise DataError(f"{message} (training setting '{inner.field}')", file=path, line=yaml_line(text, loc),
                        field=field or inner.field) from None
