"""PNG figures of a training run: the per-epoch curve and the metrics at each cut-off K.

Drawn with matplotlib's Agg backend through the object API (no pyplot state), so they work headless and
from any thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

AT_K = re.compile(r"([a-z]+)@(\d+)")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def training_curve(history: Sequence[Mapping[str, Any]], metric: str, path: str | Path,
                   best_epoch: int | None = None) -> Path:
    """Loss (left axis) and the validation ``metric`` (right axis) per epoch."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], color="tab:blue", marker=".", label="training loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("training loss", color="tab:blue")
    key = f"valid_{metric}"
    evaluated = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
    ax2 = ax.twinx()
    if evaluated:
        ax2.plot(*zip(*evaluated, strict=True), color="tab:orange", marker=".", label=f"valid {metric}")
    ax2.set_ylabel(f"valid {metric}", color="tab:orange")
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", fontsize="small")
    ax.set_title("training curve")
    return _save(fig, path)


def metrics_at_k(splits: Mapping[str, Mapping[str, float]], path: str | Path,
                 names: Sequence[str] = ("recall", "ndcg")) -> Path:
    """One panel per metric name (Recall, NDCG), K on the x axis, one line per split (valid, test)."""
    fig = Figure(figsize=(4 * len(names), 3.6), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        ks: set[int] = set()
        for split, values in splits.items():
            points = sorted((int(m[2]), float(v)) for k, v in values.items()
                            if (m := AT_K.fullmatch(k)) and m[1] == name)
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=split)
                ks.update(k for k, _ in points)
        ax.set_xticks(sorted(ks))
        ax.set_xlabel("K")
        ax.set_ylabel(f"{name}@K")
        ax.set_title(f"{name}@K")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return _save(fig, path)
