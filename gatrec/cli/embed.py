"""``gatrec embed``: item text/image embeddings, PCA fusion and the item–item kNN graph."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from gatrec.cli.locations import Location
from gatrec.cli.options import mlflow_options
from gatrec.errors import invalid_options


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@click.command("embed")
@click.option("--data", "data", required=True, type=Location(exists=True, file_okay=False, path_type=Path),
              help="Prepared dataset folder (from `gatrec prepare`).")
@click.option("--out", type=Location(file_okay=False, path_type=Path), default=None,
              help="Features folder. [default: DATA/features]")
@click.option("--modalities", default="text,image", show_default=True,
              help="Comma list of text,image; a modality no item has is skipped with a warning.")
@click.option("--text-model", default="all-MiniLM-L6-v2", show_default=True,
              help="sentence-transformers name or local folder (the default is bundled: works offline).")
@click.option("--text-fields", default="title,brand,categories,description", show_default=True,
              help="items.parquet columns joined, in order, into each item's text.")
@click.option("--text-batch-size", type=int, default=64, show_default=True)
@click.option("--image-model", default="ViT-B-32", show_default=True, help="open_clip architecture.")
@click.option("--image-weights", default="openai", show_default=True,
              help="Checkpoint file, open_clip pretrained tag (downloaded; needs network), or 'none' = random "
                   "init (loud warning; recorded as image_weights_random in features.json).")
@click.option("--image-batch-size", type=int, default=32, show_default=True)
@click.option("--fused-dim", type=int, default=128, show_default=True, help="PCA size of the fused features.")
@click.option("--knn-k", type=int, default=20, show_default=True, help="Neighbours per item; 0 = no graph.")
@click.option("--knn-features", type=click.Choice(["auto", "text", "image", "fused"]), default="auto",
              show_default=True, help="Features the graph is built on; auto = fused with ≥2 modalities.")
@click.option("--knn-backend", type=click.Choice(["auto", "torch", "faiss"]), default="auto", show_default=True,
              help="auto = faiss above 20k items.")
@click.option("--device", default=None, help="torch device for both models. [default: cuda if available]")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Embedding cache. [default: $GATREC_CACHE, else OUT/cache]")
@mlflow_options("record the step as an MLflow run")
def command(data: Path, out: Path | None, modalities: str, text_model: str, text_fields: str,
            text_batch_size: int, image_model: str, image_weights: str, image_batch_size: int, fused_dim: int,
            knn_k: int, knn_features: str, knn_backend: str, device: str | None, cache_dir: Path | None,
            no_mlflow: bool, experiment: str | None) -> None:
    """Embed item text and images, fuse them, and build the item–item kNN graph.

    Writes text.npy / image.npy / fused.npy (+ *_mask.npy), knn_<features>_k<k>.npz and features.json.
    Embeddings are cached by content, so a rerun only encodes new or changed items.

    \b
    Example:
      gatrec embed --data data/prepared --image-weights none --knn-k 20
    """
    from gatrec.features.pipeline import EmbedConfig, run_embed
    from gatrec.tracking.steps import step_run

    try:
        cfg = EmbedConfig(
            data=data, out=out, cache_dir=cache_dir, modalities=_csv(modalities), fused_dim=fused_dim,
            text={"model": text_model, "fields": _csv(text_fields), "batch_size": text_batch_size,
                  "device": device},
            image={"model": image_model, "weights": image_weights, "batch_size": image_batch_size,
                   "device": device},
            knn={"k": knn_k, "backend": knn_backend} if knn_k > 0 else None, knn_features=knn_features)
    except ValidationError as exc:
        raise invalid_options(exc, as_flags=False) from None
    out_dir = cfg.out or data / "features"
    with step_run("embed", enabled=not no_mlflow, experiment=experiment,
                  params=cfg.model_dump(mode="json")) as step:
        manifest = run_embed(cfg)
        step.embedded(data, out_dir, manifest)
    arrays = ", ".join(f"{k} {v['dim']}-d ({v['n_present']}/{v['n_items']} present)"
                       for k, v in manifest["arrays"].items())
    click.echo(f"features: {arrays}")
    for g in manifest["knn"].values():
        click.echo(f"kNN graph: {g['file']} ({g['edges']} directed edges, backend {g['backend']})")
    click.echo(f"wrote {out_dir / 'features.json'}")
