"""``gatrec fetch``: download official Amazon review dumps (needs internet; resumable)."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from gatrec.errors import invalid_options


def _checksums(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, digest = value.partition("=")
        if not sep or not name or not digest:
            raise click.BadParameter(f"expected FILE=HEX, got {value!r}", param_hint="--sha256")
        pairs[name] = digest
    return pairs


@click.command("fetch")
@click.argument("source", type=click.Choice(["amazon-2014", "amazon-2018", "amazon-2023"]))
@click.option("--category", default="Electronics", show_default=True,
              help="Category as spelled in the release's file names, e.g. Electronics, All_Beauty.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the downloaded files.")
@click.option("--base-url", help="Override the host (a mirror); the release's relative paths are kept.")
@click.option("--reviews-only", is_flag=True, help="Skip the item metadata file.")
@click.option("--sha256", "sha256", multiple=True, metavar="FILE=HEX",
              help="Expected sha256 of a file (repeatable), e.g. reviews_Electronics_5.json.gz=ab12...")
@click.option("--retries", type=int, default=5, show_default=True,
              help="Consecutive failed attempts allowed per file (backoff doubles from 1 s).")
def command(source: str, category: str, out: Path, base_url: str | None, reviews_only: bool,
            sha256: tuple[str, ...], retries: int) -> None:
    """Download the review (5-core where published) and metadata dumps of one category.

    \b
    Files per release (default hosts in gatrec/data/fetch.py):
      amazon-2014  reviews_<Cat>_5.json.gz + meta_<Cat>.json.gz       (snap.stanford.edu)
      amazon-2018  <Cat>_5.json.gz + meta_<Cat>.json.gz               (datarepo.eng.ucsd.edu)
      amazon-2023  <Cat>.jsonl.gz + meta_<Cat>.jsonl.gz               (datarepo.eng.ucsd.edu)
    Interrupted downloads resume from <file>.part; complete files are skipped.

    \b
    Examples:
      gatrec fetch amazon-2014 --category Electronics --out data/amazon-2014
      gatrec fetch amazon-2023 --category All_Beauty --out data/beauty-2023 --reviews-only
    """
    from gatrec.data.fetch import FetchConfig, fetch

    try:
        config = FetchConfig(source=source, category=category, out=out, base_url=base_url,
                             reviews_only=reviews_only, sha256=_checksums(sha256), retries=retries)
    except ValidationError as exc:
        raise invalid_options(exc, "fetch options") from None
    for path in fetch(config):
        click.echo(str(path))
