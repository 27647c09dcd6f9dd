"""``gatrec bento``: package the registry's champion as a Bento, and build its container image."""

from __future__ import annotations

from pathlib import Path

import click

from gatrec.cli.options import tracking_uri_option
from gatrec.serve.config import ServeConfig

APPROX_ABOVE = ServeConfig.model_fields["approx_above"].default


@click.group(help="Serve the champion with BentoML: build the Bento, build its image.")
def command() -> None:
    pass


@command.command("build", epilog="""\b
Examples:
  gatrec bento build                                # models:/gatrec@champion -> Bento gatrec:<version>
  bentoml serve gatrec:latest --port 3000           # then: curl localhost:3000/readyz
  mlflow run . -e bento --env-manager local
""")
@click.option("--model-uri", default="models:/gatrec@champion", show_default=True,
              help="Registry version to serve: models:/NAME@ALIAS or models:/NAME/VERSION.")
@click.option("--name", default="gatrec", show_default=True, help="Name of the BentoML model and of the Bento.")
@click.option("--approx-above", type=click.IntRange(min=1), default=APPROX_ABOVE, show_default=True,
              help="Serve catalogues with more items than this through an approximate FAISS index.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("work/bento.json"),
              show_default=True, help="Where to record the Bento's tag, path and model (JSON).")
@tracking_uri_option
def build_command(model_uri: str, name: str, approx_above: int, out: Path, tracking_uri: str | None) -> None:
    """Import the champion into the BentoML model store (labelled with its registry version, run id,
    data digest and split) and build the Bento from bentofile.yaml (numpy + pydantic + bentoml; no torch)."""
    from gatrec.cli.options import client_for
    from gatrec.fsutil import write_json
    from gatrec.serve.bento import build

    client_for(tracking_uri)
    bento, model = build(model_uri, name, approx_above)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"bento": str(bento.tag), "path": bento.path, "model": model.tag, "model_uri": model_uri,
                     "registry_version": model.registry_version})
    click.echo(f"built Bento {bento.tag} ({bento.path})")
    click.echo(f"serve it:  bentoml serve {bento.tag} --port 3000")


@command.command("containerize")
@click.argument("bento", default="gatrec:latest")
@click.option("--base-image", default=None, help="Build on this base image instead of the Bento's.")
@click.option("--tag", "image_tag", default=None, help="Image tag [NAME:VERSION of the Bento].")
def containerize_command(bento: str, base_image: str | None, image_tag: str | None) -> None:
    """Build the Bento's OCI image with buildah (no Docker daemon needed)."""
    from gatrec.serve.bento import containerize

    tag = containerize(bento, base_image=base_image, image_tag=image_tag)
    click.echo(f"built image {tag}")
    click.echo(f"run it:  buildah from {tag}  # then buildah run --isolation=chroot --network=host <ctr> ...")
