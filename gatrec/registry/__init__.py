"""The MLflow model lifecycle: pickle-free pyfunc, registry versions, gated promotion, audit, rollback.

Entry points (imported lazily: mlflow is slow to import)::

    register_run(run_dir_or_id, name=None) -> ModelVersion        # gatrec register
    promote(version, name=None, policy=None, actor="cli") -> Outcome   # gatrec promote
    rollback(name=None) -> Outcome                               # gatrec rollback
    load_policy(path=None) -> Policy
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "register_run": "gatrec.registry.register",
    "model_name": "gatrec.registry.register",
    "promote": "gatrec.registry.promote",
    "rollback": "gatrec.registry.promote",
    "Outcome": "gatrec.registry.promote",
    "load_policy": "gatrec.registry.policy",
    "Policy": "gatrec.registry.policy",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gatrec.registry' has no attribute {name!r}")
