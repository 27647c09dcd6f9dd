"""Fast aggregation for PyG attention layers: the layer's own attention, summed by a sparse CSR matmul.

Hand-written because PyG's ``propagate`` is the bottleneck on CPU without its compiled extensions: it
materialises one message per edge (``alpha * x_j``, an E × d tensor) and scatters it, forward and backward,
and that multiply/gather/scatter is most of a GATConv step. Here the attention coefficients still come from
the layer's own ``edge_updater`` (PyG's code: logits, LeakyReLU, softmax over each node's neighbours,
dropout), and only the weighted sum over neighbours becomes ``csr(alpha) @ x``. Its backward is one more
matmul with the transposed matrix and ``torch.sparse.sampled_addmm`` for the gradient of ``alpha`` (an SDDMM
that never builds E × d).
With a linear logit (``negative_slope=1``, gatrec's default) and no edge features, GATConv's attention is
exactly a weight per neighbour, and ``_node_attention`` needs no per-edge work at all: two matmuls with the
0/1 matrix, the weights folded in as row and column scalings (a GAT epoch is faster that way than by the
per-edge softmax). The figures are in BENCHMARKS.md (Training speed; Design notes).
``tests/models/test_sparse_attention.py`` checks outputs and gradients against the layer's ``forward``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from gatrec.models.sparse import EdgeCSR, block_spmm, spmm

if TYPE_CHECKING:  # PyG is imported where a layer runs (gatrec/models/gat.py says why)
    from torch_geometric.nn import GATConv, GATv2Conv


class Tile(nn.Module):
    """A GATConv input map fixed to the identity (one copy per head): no transformation on the ID path."""

    def __init__(self, heads: int):
        super().__init__()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.heads == 1 else x.repeat(1, self.heads)

    def reset_parameters(self) -> None:  # GATConv.reset_parameters calls it: nothing to reset
        pass


def attend(conv: GATConv | GATv2Conv, x: torch.Tensor, graph: EdgeCSR, edge_attr: torch.Tensor | None = None,
           degree: torch.Tensor | None = None, detach_scores: bool = False,
           rows: torch.Tensor | None = None) -> torch.Tensor:
    """``conv(x, graph.edge_index, edge_attr)`` (at ``rows``): ``attend_and_gather`` without the gather."""
    return attend_and_gather(conv, x, graph, edge_attr, degree, detach_scores, rows)[0]


def attend_and_gather(conv: GATConv | GATv2Conv, x: torch.Tensor, graph: EdgeCSR,
                      edge_attr: torch.Tensor | None = None, degree: torch.Tensor | None = None,
                      detach_scores: bool = False, rows: torch.Tensor | None = None,
                      gather: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``conv(x, graph.edge_index, edge_attr)`` for the layers gatrec builds, computed with ``spmm``.

    Requires what ``gatrec.models.gat.attention_conv`` sets up: every head sees the same input (a ``Tile``
    input map), heads averaged (``concat=False``), no self-loops, bias or residual. Then the mean over
    heads of ``A_h @ x`` is ``(mean_h A_h) @ x``: one matmul whatever the number of heads.

    With ``degree`` (n, 1) it returns ``D^1/2 conv(D^-1/2 x)`` (D = diag(degree)), the scaling folded into
    the E edge values instead of two n × d products, forward and backward.
    ``detach_scores``: the logits see ``x`` without passing gradients to it (only the attention vectors learn
    from them); the output is the same. ``rows`` (sorted distinct node ids): the output at those rows only,
    (len(rows), d), which the node-attention path computes from those rows' edges alone. Also returns
    ``x[gather]`` (empty when None), whose gradient the node-attention path adds into ``x``'s in place.
    """
    from torch_geometric.nn import GATv2Conv

    lin = conv.lin_l if isinstance(conv, GATv2Conv) else conv.lin
    if (not isinstance(lin, Tile) or conv.concat or conv.add_self_loops or conv.bias is not None
            or getattr(conv, "res", None) is not None):
        raise ValueError("attend() needs a Tile input map, averaged heads, no self-loops, bias or residual")
    inv_sqrt = None if degree is None else degree.clamp(min=1).rsqrt()
    seen = x.detach() if detach_scores else x  # what the logits read
    if is_node_attention(conv, edge_attr):
        return _node_attention(conv, x, seen, graph, inv_sqrt, rows, gather)
    values = coefficients(conv, seen, graph, edge_attr, inv_sqrt).mean(dim=1)
    if inv_sqrt is not None:  # (D^1/2 A D^-1/2)_rc = a_rc sqrt(d_r / d_c)
        src, dst = graph.edge_index
        values = values * (inv_sqrt[src] / inv_sqrt[dst]).squeeze(1)
    out = spmm(values, x, graph)
    return (out if rows is None else out[rows]), (x[:0] if gather is None else x[gather])


def coefficients(conv: GATConv | GATv2Conv, seen: torch.Tensor, graph: EdgeCSR,
                 edge_attr: torch.Tensor | None = None, inv_sqrt: torch.Tensor | None = None) -> torch.Tensor:
    """The layer's attention coefficients per edge and head, (E, heads), from its own ``edge_updater`` (PyG's
    logits, LeakyReLU, softmax over each node's neighbours, dropout), for input ``seen`` scaled by ``inv_sqrt``
    (``D^-1/2``) as ``attend_and_gather`` feeds the layer."""
    from torch_geometric.nn import GATv2Conv

    heads = conv.heads
    if isinstance(conv, GATv2Conv):  # logits need x_i + x_j per edge: scale x itself
        h = conv.lin_l(seen if inv_sqrt is None else inv_sqrt * seen).view(-1, heads, conv.out_channels)
        return conv.edge_updater(graph.edge_index, x=(h, h), edge_attr=edge_attr)
    # <x_j, a_src> for every head by one matmul (PyG's mul + sum builds n × heads × d, twice)
    scores = logits(seen, torch.cat([conv.att_src[0], conv.att_dst[0]]))
    if inv_sqrt is not None:
        scores = scores * inv_sqrt
    return conv.edge_updater(graph.edge_index, alpha=(scores[:, :heads], scores[:, heads:]), edge_attr=edge_attr,
                             size=None)


_SPREAD = 40.0
_ROW_CHUNKS = 8


def _row_chunks(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A (chunks, m, k) view of the first chunks × m rows of ``t``, and the rows left over."""
    m = t.shape[0] // _ROW_CHUNKS
    return t[: _ROW_CHUNKS * m].view(_ROW_CHUNKS, m, t.shape[1]), t[_ROW_CHUNKS * m:]


class _Logits(torch.autograd.Function):
    """``x @ att.T`` for a tall ``x`` (n × d) and a few vectors ``att`` (heads × d), as a batched product over
    row chunks, and so its gradient for ``att``: torch's matrix-vector product at this shape is slow and runs
    on one thread."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, att)
        main, rest = _row_chunks(x)
        out = torch.bmm(main, att.T.expand(_ROW_CHUNKS, -1, -1)).reshape(-1, att.shape[0])
        return torch.cat([out, rest @ att.T])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # type: ignore[override]
        x, att = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad @ att if ctx.needs_input_grad[0] else None
        grad_att = None
        if ctx.needs_input_grad[1]:
            (g_main, g_rest), (x_main, x_rest) = _row_chunks(grad), _row_chunks(x)
            grad_att = torch.bmm(g_main.transpose(1, 2), x_main).sum(0) + g_rest.T @ x_rest
        return grad_x, grad_att


def logits(x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
    """``x @ att.T`` (n × heads), differentiable in both."""
    return _Logits.apply(x.contiguous(), att)


def is_node_attention(conv: GATConv | GATv2Conv, edge_attr: torch.Tensor | None = None) -> bool:
    """Whether ``conv``'s attention reduces to a weight per neighbour (``_node_attention`` computes it)."""
    from torch_geometric.nn import GATConv

    return (isinstance(conv, GATConv) and conv.negative_slope == 1.0 and edge_attr is None
            and (conv.dropout == 0 or not conv.training))


def _node_attention(conv: GATConv, x: torch.Tensor, seen: torch.Tensor, graph: EdgeCSR,
                    inv_sqrt: torch.Tensor | None, rows: torch.Tensor | None,
                    gather: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """GATConv with a linear logit (``negative_slope=1``) and no edge features, by two constant-valued matmuls.

    The logit of edge j -> i is then ``<a_src, x_j> + <a_dst, x_i>``; the second term is the same for all of
    i's neighbours and cancels in the softmax, so ``alpha_ij = w_j / sum_{k in N(i)} w_k`` with
    ``w = exp(x @ a_src)``: GAT's static attention (Brody et al., ICLR 2022: GATConv ranks neighbours the same
    for every query anyway), exactly. Then ``A @ x = (Adj @ (w * x)) / (Adj @ w)`` with Adj the 0/1 matrix,
    whose backward is one more matmul: no per-edge softmax and no SDDMM for the gradient of alpha (most of
    a layer's time otherwise). ``seen``: the ``x`` the logits read (detached or not).
    """
    scores = logits(seen, conv.att_src[0])  # (n, heads)
    if inv_sqrt is not None:  # D^1/2 A D^-1/2 x: the logits too are those of D^-1/2 x, as the layer sees it
        scores = scores * inv_sqrt
    # One shift for all nodes (it cancels in each row's ratio), so w <= 1. Logits more than _SPREAD below the
    # top one count as _SPREAD below: exact while a neighbourhood's logits lie within e^40 of the graph's top,
    # and a row's sum stays far from float32 underflow (whose 0/0 would be NaN, also in the gradient).
    w = torch.exp((scores - scores.max().detach()).clamp(min=-_SPREAD))
    block = graph.block(rows)
    total = block_spmm(w, block)[0]  # (r, heads): sum of w over N(i)
    total = torch.where(total > 0, total, 1.0)  # no neighbours (edge dropout): output 0, as GATConv's
    col = w if inv_sqrt is None else w * inv_sqrt
    row = conv.heads * total
    if inv_sqrt is not None:
        row = row * (inv_sqrt if rows is None else inv_sqrt.index_select(0, rows))
    out, gathered = block_spmm(x, block, 1 / row[:, 0], col[:, 0].contiguous(), gather)
    for h in range(1, conv.heads):  # (not sum(): its start, 0 + out, would write one more n × d tensor)
        out = out + block_spmm(x, block, 1 / row[:, h], col[:, h].contiguous())[0]
    return out, gathered
