"""Registered-model names and aliases, apart from ``register.py`` so that promotion, rollback and the webhook
do not import what registration needs (torch for the baseline, the pyfunc packaging)."""

from __future__ import annotations

import os

DEFAULT_MODEL_NAME = "gatrec"
CANDIDATE_ALIAS, CHAMPION_ALIAS = "candidate", "champion"


def model_name(name: str | None = None) -> str:
    """``name``, else ``$GATREC_MODEL_NAME``, else ``gatrec``."""
    return name or os.environ.get("GATREC_MODEL_NAME") or DEFAULT_MODEL_NAME
