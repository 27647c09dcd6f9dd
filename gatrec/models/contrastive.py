"""XSimGCL's contrastive term (Yu et al., TKDE 2023), for the graph models' training steps.

While training, every propagation layer's output gets a small random perturbation, ``x + eps * sign(x) *
unit(U(0, 1))`` (the same orthant, so it rotates a row by at most a small angle), and the batch's final
representations are contrasted with their own layer-``l*`` ones by InfoNCE (temperature ``tau``): the
row's other-layer self is its positive, the batch's other users (items) its negatives. It costs no extra
propagation (the view is a layer the step computes anyway) and makes the representations more uniform on
the sphere, which is where the published gains on sparse Amazon data come from. Evaluation propagates
without noise. ``tests/models/test_contrastive.py`` checks the pieces against direct formulas.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field


class ContrastiveFields(BaseModel):
    """The contrastive term's settings, shared by the graph models' configs; ``cl_weight`` 0 = off (and no
    noise either)."""

    model_config = ConfigDict(extra="forbid")

    cl_weight: float = Field(0.0, ge=0, description="XSimGCL: weight of the contrastive (InfoNCE) term; 0 = off")
    cl_noise: float = Field(0.2, ge=0, description="XSimGCL: norm of each row's random perturbation per layer")
    cl_temperature: float = Field(0.2, gt=0, description="XSimGCL: temperature of the InfoNCE softmax")
    cl_layer: int = Field(1, ge=1, description="XSimGCL: the layer whose output is contrasted with the final one")
    cl_rows: int = Field(2048, ge=2, description="XSimGCL: at most this many of a batch's users (and items), drawn "
                         "at random, are contrasted: the InfoNCE costs rows^2 x dim (XSimGCL's batches are 2048)")

    def cl_noise_now(self, training: bool) -> float:
        """The perturbation to add to each layer's output in this pass: none when off or evaluating."""
        return self.cl_noise if training and self.cl_weight > 0 else 0.0


def perturb(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``x + eps * sign(x) * unit-row uniform noise``: each row moved by exactly ``eps`` within its orthant
    (``x`` itself when ``eps`` is 0)."""
    if eps == 0:
        return x
    # The noise is a constant to autograd (sign has a zero gradient), so it is built without a graph and in
    # place: the step's largest cost of the term (bench/design_notes.yaml).
    with torch.no_grad():
        noise = F.normalize(torch.rand_like(x), dim=1).mul_(torch.sign(x)).mul_(eps)
    return x + noise


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over rows i of ``-log softmax_j(cos(a_i, b_j) / tau)[i]``."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


def contrastive_loss(final: torch.Tensor, view: torch.Tensor, n_user_rows: int, config: ContrastiveFields
                     ) -> torch.Tensor:
    """``weight * (InfoNCE over the users + InfoNCE over the items)`` of a batch's distinct rows (users
    first: ``n_user_rows`` of them), final representations against the layer-``l*`` view."""
    total = 0.0
    for part in (slice(0, n_user_rows), slice(n_user_rows, len(final))):
        f, v = final[part], view[part]
        if len(f) > config.cl_rows:
            pick = torch.randperm(len(f), device=f.device)[: config.cl_rows]
            f, v = f.index_select(0, pick), v.index_select(0, pick)
        total = total + info_nce(f, v, config.cl_temperature)
    return config.cl_weight * total  # type: ignore[return-value]


def add_contrastive(loss_parts: tuple[torch.Tensor, dict[str, torch.Tensor]], final: torch.Tensor,
                    layers: list[torch.Tensor], rows: torch.Tensor, n_users: int, config: ContrastiveFields
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A batch's loss and its parts plus the contrastive term (part ``cl``) when it is on: ``final`` at the
    batch's sorted distinct node ``rows`` against ``layers[cl_layer]`` (the last layer when there are fewer;
    ``layers``: each layer's output at ``rows``, layer 0 first)."""
    loss, parts = loss_parts
    if config.cl_weight == 0 or len(layers) < 2:
        return loss, parts
    view = layers[min(config.cl_layer, len(layers) - 1)]
    cl = contrastive_loss(final, view, int(torch.searchsorted(rows, n_users)), config)
    return loss + cl, {**parts, "cl": cl.detach()}
