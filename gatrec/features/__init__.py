"""Item features for ``gatrec embed``: text (sentence-transformers), image (open_clip), PCA fusion.

Consumers only need the loaders in :mod:`gatrec.features.store`::

    from gatrec.features.store import load_features, load_mask, load_knn
    x = load_features("data/prepared", "text")            # float32 [n_items, 384]
    edge_index, edge_weight = load_knn("data/prepared", "fused", 20)

Modules: ``text`` / ``image`` (encoders), ``download`` (image URLs), ``cache`` (content-keyed embedding
cache), ``modalities`` (cache-aware embedding per modality), ``fuse`` (mean-fill + PCA fusion), ``store``
(folder layout + loaders), ``pipeline`` (``EmbedConfig``, ``run_embed``).
"""

from __future__ import annotations

from gatrec.features.store import load_features, load_knn, load_mask, read_manifest

__all__ = ["load_features", "load_knn", "load_mask", "read_manifest"]
