"""Model registry: name → recommender class.

A model lives in ``gatrec/models/<module>.py`` as a :class:`~gatrec.models.base.Recommender` subclass whose
``name`` attribute is its registry name. Listing names does not import torch (so ``--help`` stays fast);
``get`` imports the module. A new model needs one line in ``MODULES``; ``register`` adds one at run time.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from gatrec.errors import GatrecError

if TYPE_CHECKING:
    from gatrec.models.base import Recommender


class UnknownModel(GatrecError, KeyError):
    """A model name the registry does not know (a KeyError too, for callers that look names up)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])

# name -> module defining the class whose `name` equals it. Names whose module is absent are not listed.
MODULES: dict[str, str] = {
    "pop": "gatrec.models.pop",
    "mf": "gatrec.models.mf",
    "lightgcn": "gatrec.models.lightgcn",
    "gat": "gatrec.models.gat",
}


def register(name: str, module: str) -> None:
    """Make ``name`` resolve to the Recommender subclass with that ``name`` in ``module``."""
    MODULES[name] = module


def names() -> list[str]:
    """Registered model names whose module can be imported."""
    return [n for n, mod in MODULES.items() if importlib.util.find_spec(mod) is not None]


def get(name: str) -> type[Recommender]:
    from gatrec.models.base import Recommender

    if name not in names():
        raise UnknownModel(f"unknown model {name!r}; available: {', '.join(names())}")
    module = importlib.import_module(MODULES[name])
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, Recommender) and getattr(obj, "name", None) == name:
            return obj
    raise UnknownModel(f"{MODULES[name]} defines no Recommender subclass named {name!r}")
