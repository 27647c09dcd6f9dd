"""``gatrec embed``: item text/image embeddings, PCA fusion and the item–item kNN graph."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from gatrec.cli.locations import Location
from gatrec.cli.options import force_option, mlflow_options
from gatrec.errors import invalid_options


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _any_images(data: Path) -> bool:
    """Whether any item of the prepared folder names an image (only then are image weights needed)."""
    import pyarrow.parquet as pq

    f = data / "items.parquet"
    if not f.is_file() or "image" not in pq.read_schema(f).names:
        return False
    return any(pq.read_table(f, columns=["image"]).column("image").to_pylist())


@click.command("embed")
@click.option("--data", "data", required=True, type=Location(exists=True, file_okay=False, path_type=Path),
              help="Prepared dataset folder (from `gatrec prepare`).")
@click.option("--out", type=Location(file_okay=False, path_type=Path), default=None,
              help="Features folder (written into only if it is a features folder, else refused). "
                   "[default: DATA/features]")
@force_option("a features folder")
@click.option("--modalities", default="text,image", show_default=True,
              help="Comma list of text,image; a modality no item has is skipped with a warning.")
@click.option("--text-model", default="all-MiniLM-L6-v2", show_default=True,
              help="sentence-transformers name or local folder (the default is bundled: works offline).")
@click.option("--text-fields", default="title,brand,categories,description", show_default=True,
              help="items.parquet columns joined, in order, into each item's text.")
@click.option("--text-batch-size", type=int, default=64, show_default=True)
@click.option("--text-max-tokens", type=click.IntRange(min=8, max=512), default=128, show_default=True,
              help="Word pieces the text model reads per item (MiniLM was trained on 128).")
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
            text_batch_size: int, text_max_tokens: int, image_model: str, image_weights: str,
            image_batch_size: int, fused_dim: int,
            knn_k: int, knn_features: str, knn_backend: str, device: str | None, cache_dir: Path | None,
            force: bool, no_mlflow: bool, experiment: str | None) -> None:
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
                  "max_seq_length": text_max_tokens, "device": device},
            image={"model": image_model, "weights": image_weights, "batch_size": image_batch_size,
                   "device": device},
            knn={"k": knn_k, "backend": knn_backend} if knn_k > 0 else None, knn_features=knn_features)
    except ValidationError as exc:
        raise invalid_options(exc, as_flags=False) from None
    from gatrec.fsutil import guard_output, mark_output

    out_dir = cfg.out or data / "features"
    guard_output(out_dir, "features", force=force)
    if "image" in cfg.modalities and _any_images(data):
        from gatrec.features.download import check_pretrained_weights

        check_pretrained_weights(cfg.image.weights, model=cfg.image.model)  # offline: fail now, not after text
    out_dir.mkdir(parents=True, exist_ok=True)
    mark_output(out_dir, "features")  # so that a killed run's folder is still recognised as ours
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
