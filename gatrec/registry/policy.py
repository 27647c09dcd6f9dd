"""The promotion policy: which metrics decide, by how much, on which split (a validated YAML file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gatrec.errors import DataError, invalid_file

DEFAULT_POLICY = "default_policy.yaml"


class Policy(BaseModel):
    """Rules a model version must meet to become champion (see default_policy.yaml for the why)."""

    model_config = ConfigDict(extra="forbid")

    split: Literal["valid", "test"] = "valid"
    primary_metric: str = "ndcg@20"
    min_lift: float = Field(0.01, ge=0.0, le=10.0)
    guard_metrics: dict[str, float] = Field(default_factory=lambda: {"recall@20": 0.02})
    required_metrics: list[str] = Field(default_factory=lambda: ["ndcg@20", "recall@20"])
    require_same_data: bool = True

    @field_validator("guard_metrics")
    @classmethod
    def _tolerances(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, tol in value.items():
            if not 0.0 <= tol < 1.0:
                raise ValueError(f"tolerance of {metric} must be in [0, 1), got {tol}")
        return value

    @property
    def metrics(self) -> list[str]:
        """Every metric the policy reads, primary first, without duplicates."""
        names = [self.primary_metric, *self.guard_metrics, *self.required_metrics]
        return list(dict.fromkeys(names))


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file; ``None`` gives the packaged default policy."""
    if path is None:
        text = resources.files("gatrec.registry").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
        source: str | Path = f"<gatrec>/{DEFAULT_POLICY}"
    else:
        source = Path(path)
        if not source.is_file():
            raise DataError("policy file not found", file=source)
        text = source.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"invalid YAML: {exc}", file=source, line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise DataError("a policy must be a mapping of fields", file=source, line=1)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise invalid_file(exc, source, text) from None
