"""``gatrec synth``: write a synthetic Amazon-like dataset in the plain folder format."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from gatrec.cli.locations import Location
from gatrec.cli.options import force_option
from gatrec.errors import invalid_options


@click.command("synth")
@click.option("--out", type=Location(file_okay=False, path_type=Path), required=True,
              help="Folder to write (replaced atomically if it is an earlier synth output, else refused).")
@force_option("a synth output folder")
@click.option("--preset", type=click.Choice(["small", "electronics"]), default="small", show_default=True,
              help="Size preset; electronics = 192,403 users, 63,001 items, 1,689,188 interactions, 64 clusters.")
@click.option("--users", type=int, help="Number of users (small: 2000).")
@click.option("--items", type=int, help="Number of items (small: 800).")
@click.option("--interactions", type=int, help="Number of interactions (small: 40000).")
@click.option("--clusters", type=int, help="Number of latent product types (small: 16).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--images/--no-images", default=True, show_default=True, help="Write one PNG per item.")
@click.option("--image-size", type=int, default=32, show_default=True, help="Image side in pixels.")
@click.option("--workers", type=int, default=None, help="Image processes (default: all CPUs).")
def command(out: Path, preset: str, users: int | None, items: int | None, interactions: int | None,
            clusters: int | None, seed: int, images: bool, image_size: int, workers: int | None,
            force: bool) -> None:
    """Generate users with drifting cluster tastes, items with cluster-specific text and images, and
    interactions in which every user and item has at least 5 (user, item) pairs.

    \b
    Examples:
      gatrec synth --out data/raw
      gatrec synth --out data/electronics --preset electronics --no-images
    """
    from gatrec.data.synth import ELECTRONICS, SynthConfig, synthesize

    sizes = dict(ELECTRONICS) if preset == "electronics" else {}
    given = {"users": users, "items": items, "interactions": interactions, "clusters": clusters}
    sizes.update({k: v for k, v in given.items() if v is not None})
    try:
        config = SynthConfig(**sizes, seed=seed, images=images, image_size=image_size)
    except ValidationError as exc:  # one line per problem, named by its option
        raise invalid_options(exc, "synth options") from None
    path = synthesize(config, out, workers=workers, force=force)
    click.echo(str(path))
