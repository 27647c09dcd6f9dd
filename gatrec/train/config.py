"""The training configuration: one validated object, loadable from YAML, overridable from the CLI."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gatrec import models
from gatrec.errors import DataError, invalid_file


class TrainConfig(BaseModel):
    # `model_params` would clash with pydantic's reserved "model_" prefix otherwise.
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="registry name: pop, mf, lightgcn, ...")
    epochs: int = Field(300, ge=0)
    batch_size: int = Field(2048, ge=1, description="BPR triples per step; the model's own default if unset")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate; the model's own default if unset")
    weight_decay: float = Field(0.0, ge=0, description="optimizer weight decay (models also regularise)")
    patience: int = Field(20, ge=1, description="stop after this many epochs without a better valid metric")
    eval_every: int = Field(1, ge=1)
    ks: list[int] = Field(default_factory=lambda: [10, 20, 50], min_length=1)
    metric: str = Field("ndcg@20", description="validation metric for early stopping, e.g. recall@20")
    seed: int = 0
    device: str = Field("auto", description="auto (cuda when available), cpu, cuda, cuda:1, ...")
    mask_valid_at_test: bool = False
    model_params: dict[str, Any] = Field(default_factory=dict, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _model_train_defaults(cls, data: Any) -> Any:
        """Fill settings the user left unset from the model's ``train_defaults`` (e.g. the GAT's tuned lr)."""
        if isinstance(data, dict) and data.get("model") in models.names():
            defaults = models.get(data["model"]).train_defaults
            data = {**defaults, **{k: v for k, v in data.items() if v is not None or k not in defaults}}
        return data

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in models.names():
            raise ValueError(f"unknown model {v!r}; available: {', '.join(models.names())}")
        return v

    @field_validator("ks")
    @classmethod
    def _sorted_ks(cls, v: list[int]) -> list[int]:
        if any(k < 1 for k in v):
            raise ValueError("every k must be >= 1")
        return sorted(set(v))

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError(f"device must be auto, cpu, cuda[:N] or mps, not {v!r}")
        return v

    @field_validator("model_params")
    @classmethod
    def _model_params(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "model" not in info.data:  # the model name itself was invalid
            return v
        config_cls = models.get(info.data["model"]).Config
        try:
            params = config_cls.model_validate(v)
        except ValidationError as exc:
            err = exc.errors()[0]
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = (f"model {info.data['model']!r} has no parameter {err['loc'][-1]!r}; its parameters: "
                       f"{', '.join(config_cls.model_fields)}")
            raise _NestedError(msg, tuple(str(p) for p in err["loc"])) from None
        # Resolve the model's own defaults so config.yaml records every value that was used.
        return params.model_dump(mode="json")

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str, info: ValidationInfo) -> str:
        from gatrec.evaluate.ranking import METRICS, parse_metric

        ks = info.data.get("ks", [])
        parsed = parse_metric(v)
        if parsed is None or parsed[1] not in ks:
            raise ValueError(f"must be one of {', '.join(METRICS)} at a k in ks={ks}, not {v!r}")
        return v

    def model_hparams(self) -> BaseModel:
        """The model's validated hyper-parameter object."""
        return models.get(self.model).Config.model_validate(self.model_params)

    def digest(self) -> str:
        """Stable hash of every setting: a checkpoint is resumed only under the same one."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def build(cls, values: dict[str, Any], *, source: str | Path | None = None, text: str | None = None
              ) -> TrainConfig:
        """Validate ``values``; errors become a DataError naming ``source``, the line (when known) and field."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise invalid_file(exc, source or "config", text) from None

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Settings from ``path`` (optional), then ``overrides`` (None values are ignored)."""
        values: dict[str, Any] = {}
        text = None
        if path is not None:
            path = Path(path)
            try:
                text = path.read_text()
                loaded = yaml.safe_load(text) or {}
            except OSError as exc:
                raise DataError(f"cannot read config: {exc.strerror}", file=path) from None
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                raise DataError(f"invalid YAML: {getattr(exc, 'problem', exc)}", file=path,
                                line=mark.line + 1 if mark else None) from None
            if not isinstance(loaded, dict):
                raise DataError("expected a mapping of settings", file=path)
            values.update(loaded)
        for key, val in (overrides or {}).items():
            if val is None:
                continue
            if key == "model_params":
                values["model_params"] = {**(values.get("model_params") or {}), **val}
            else:
                values[key] = val
        return cls.build(values, source=path, text=text)


class _NestedError(ValueError):
    def __init__(self, msg: str, loc: tuple[str, ...]):
        super().__init__(msg)
        self.loc = loc

