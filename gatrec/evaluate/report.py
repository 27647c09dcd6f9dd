"""Plain-text metric tables for the terminal: rows are splits, columns metric@k grouped by k."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gatrec.evaluate.ranking import METRICS

SHORT = {m: {"precision": "prec"}.get(m, m) for m in METRICS}  # column heads


def available_ks(results: Mapping[str, Mapping[str, float]], metric: str = "recall") -> list[int]:
    ks = {int(key.split("@")[1]) for res in results.values() for key in res if key.startswith(f"{metric}@")}
    return sorted(ks)


def format_table(results: Mapping[str, Mapping[str, float]], ks: Sequence[int] | None = None,
                 metrics: Sequence[str] = tuple(SHORT)) -> str:
    """``{"valid": {...}, "test": {...}}`` → an aligned table; missing values show as '-'.

    ::

        split  |  recall@10  ndcg@10  prec@10  hit@10  mrr@10 |  recall@20 ...
        valid  |     0.0812   0.0431   0.0093  0.0871  0.0334 |     0.1203 ...
    """
    ks = list(ks) if ks is not None else available_ks(results)
    rows = {name: res for name, res in results.items() if res}
    width = max([5, *map(len, rows)])
    cols = [[(m, k) for m in metrics] for k in ks]
    heads = [[f"{SHORT.get(m, m)}@{k}" for m, k in group] for group in cols]
    colw = [[max(len(h), 6) for h in group] for group in heads]
    lines = ["split".ljust(width) + "".join(
        " | " + " ".join(h.rjust(w) for h, w in zip(group, ws, strict=True)) for group, ws in zip(heads, colw, strict=True))]
    lines.append("-" * len(lines[0]))
    for name, res in rows.items():
        cells = []
        for group, ws in zip(cols, colw, strict=True):
            vals = [f"{res[f'{m}@{k}']:.4f}" if f"{m}@{k}" in res else "-" for m, k in group]
            cells.append(" | " + " ".join(v.rjust(w) for v, w in zip(vals, ws, strict=True)))
        lines.append(name.ljust(width) + "".join(cells))
    if any("n_users" in res for res in rows.values()):
        lines.append("users evaluated: " + ", ".join(
            f"{name} {int(res['n_users'])}" for name, res in rows.items() if "n_users" in res))
    return "\n".join(lines)
