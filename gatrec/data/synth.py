"""Synthetic Amazon-like data in the plain folder format (``interactions.csv``, ``items.jsonl``, ``images/``).

Generative story (vectorised numpy; Python loops run only per item, per cluster or per sampling round):

* Items are spread evenly over ``clusters`` product types; inside a cluster popularity follows a power law.
* Each user has a Dirichlet taste over clusters (a few favourites) that drifts towards a second taste over
  their history: an interaction at relative time ``t`` draws its cluster from the mix ``(1-t)·start + t·end``
  and its item by popularity inside that cluster, or (probability ``noise``) from global popularity.
* Every item first gets ``min_item_interactions`` distinct users chosen by taste × activity; every user gets
  ``min_user_interactions`` plus a log-normal share of the rest. (user, item) pairs are unique, so dedupe and
  a 5-core remove nothing. ``interactions`` is met exactly unless it is so close to the minimums that the
  item minimums push some users over their share (then a few more; ``synth.json`` has the real count).
* Titles/descriptions mix cluster words (product nouns, features, the cluster's brands) with generic words;
  each image is the cluster's colour pair and pattern with per-item jitter and pixel noise.

``timestamp`` is the ordinal position in the user's history (as in ../shared/data); ``rating`` is 1–5 and
higher for items of clusters the user likes. ``synth.json`` records the config and the true clusters.
"""

from __future__ import annotations

import colorsys
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm import tqdm

from gatrec import log as _log
from gatrec.fsutil import atomic_dir, guard_output, write_json

log = _log.get(__name__)

OUTPUT_KIND = "synth"
ELECTRONICS = {"users": 192_403, "items": 63_001, "interactions": 1_689_188, "clusters": 64}
MAX_USER_SHARE = 0.25  # no user touches more than this share of the catalogue: keeps unique sampling fast
TASTE_ROUNDS = 10  # resampling rounds by taste before the few leftover slots are filled uniformly

# (product type, department, nouns, feature words): the cluster vocabularies, Amazon-Electronics flavoured.
CATALOG: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Headphones", "Audio", ("headphones", "earbuds", "headset", "earphones"),
     ("noise-cancelling", "over-ear", "in-ear", "bass", "foldable", "earcups")),
    ("Speakers", "Audio", ("speaker", "soundbar", "boombox", "bookshelf speakers"),
     ("waterproof", "loud", "outdoor", "party", "360-degree", "woofer")),
    ("Microphones", "Audio", ("microphone", "mic", "pop filter", "boom arm"),
     ("condenser", "cardioid", "podcast", "vocals", "studio", "xlr")),
    ("Laptops", "Computers", ("laptop", "notebook", "ultrabook", "chromebook"),
     ("ssd", "touchscreen", "backlit", "processor", "ram", "15.6-inch")),
    ("Keyboards", "Computers", ("keyboard", "keycaps", "keypad", "wrist rest"),
     ("mechanical", "ergonomic", "tactile", "switches", "numeric", "typing")),
    ("Mice", "Computers", ("mouse", "trackball", "mouse pad", "touchpad"),
     ("optical", "dpi", "gaming", "scroll", "ambidextrous", "clicks")),
    ("Monitors", "Computers", ("monitor", "display", "screen", "monitor arm"),
     ("4k", "ips", "refresh", "hdr", "widescreen", "vesa")),
    ("Storage", "Computers", ("hard drive", "flash drive", "memory card", "drive enclosure"),
     ("terabyte", "sata", "backup", "gigabyte", "microsd", "read-speed")),
    ("Networking", "Computers", ("router", "modem", "range extender", "network switch"),
     ("wifi", "ethernet", "gigabit", "mesh", "dual-band", "antennas")),
    ("Printers", "Office Electronics", ("printer", "ink cartridge", "toner", "scanner"),
     ("inkjet", "laser", "duplex", "pages", "refill", "all-in-one")),
    ("Cameras", "Camera & Photo", ("camera", "camcorder", "dslr", "action camera"),
     ("megapixel", "zoom", "sensor", "shutter", "1080p", "stabilization")),
    ("Lenses", "Camera & Photo", ("lens", "telephoto lens", "lens filter", "lens hood"),
     ("aperture", "focal", "autofocus", "prime", "uv", "bokeh")),
    ("Tripods", "Camera & Photo", ("tripod", "monopod", "gimbal", "ball head"),
     ("aluminum", "quick-release", "legs", "panoramic", "stabilizer", "carbon-fiber")),
    ("Televisions", "Home Theater", ("television", "tv", "smart tv", "tv mount"),
     ("uhd", "hdmi", "streaming", "remote", "55-inch", "oled")),
    ("Projectors", "Home Theater", ("projector", "projection screen", "projector mount", "projector lamp"),
     ("lumens", "throw", "keystone", "cinema", "native", "ceiling")),
    ("Phone Cases", "Cell Phones & Accessories", ("phone case", "screen protector", "phone cover", "bumper"),
     ("shockproof", "tempered-glass", "slim", "silicone", "clear", "drop-tested")),
    ("Chargers", "Cell Phones & Accessories", ("charger", "power bank", "charging cable", "wall adapter"),
     ("fast-charging", "usb-c", "mah", "lightning", "qi", "watt")),
    ("Smartwatches", "Wearable Technology", ("smartwatch", "fitness tracker", "watch band", "activity tracker"),
     ("heart-rate", "steps", "sleep", "gps", "notifications", "strap")),
    ("Car Audio", "Car Electronics", ("car stereo", "car amplifier", "head unit", "car subwoofer"),
     ("dash", "din", "channel", "receiver", "marine", "crossover")),
    ("Car Navigation", "Car Electronics", ("gps navigator", "dash cam", "radar detector", "backup camera"),
     ("navigation", "maps", "traffic", "night-vision", "loop-recording", "windshield")),
    ("Batteries", "Accessories & Supplies", ("batteries", "battery charger", "aa batteries", "battery pack"),
     ("nimh", "lithium", "aaa", "alkaline", "cells", "long-lasting")),
    ("Cables", "Accessories & Supplies", ("hdmi cable", "usb cable", "extension cord", "adapter"),
     ("braided", "gold-plated", "feet", "connector", "male", "female")),
    ("Tablets", "Computers", ("tablet", "e-reader", "stylus", "tablet case"),
     ("android", "kindle", "pen", "8-inch", "kids", "reading")),
    ("Game Controllers", "Video Games", ("game controller", "gamepad", "joystick", "racing wheel"),
     ("vibration", "triggers", "console", "thumbsticks", "turbo", "wired")),
)
SERIES = ("Pro", "Mini", "Max", "Lite", "Ultra", "Studio", "Sport", "Travel", "Kids", "Marine", "Elite", "Eco")
BRAND_HEADS = ("Zen", "Volt", "Nova", "Aero", "Lumi", "Kor", "Vex", "Orbi", "Tera", "Quan", "Pyx", "Solo",
               "Ember", "Helio", "Iri", "Jolt")
BRAND_TAILS = ("tek", "ix", "wave", "core", "lab", "sonic", "max", "link", "gear", "tron", "vista", "flux",
               "pulse", "forge", "byte", "nest")
GENERIC_WORDS = ("premium", "durable", "compact", "lightweight", "portable", "universal", "new", "upgraded",
                 "version", "pack", "kit", "bundle", "quality", "easy", "setup", "design", "warranty", "gift",
                 "home", "office", "travel", "professional", "high", "performance", "reliable", "wireless",
                 "bluetooth", "usb", "smart", "digital", "compatible", "replacement", "black", "white",
                 "original", "heavy-duty", "best", "value", "classic", "modern")
COLORS = ("Black", "White", "Silver", "Gray", "Blue", "Red", "Rose Gold", "Green")


class SynthConfig(BaseModel):
    """What to generate. Defaults (2,000 users, 800 items, 40,000 interactions, 16 clusters of 50 items) keep
    synth → prepare → train (LightGCN, GAT) → eval to a few minutes on 2 cores with a clear signal."""

    model_config = ConfigDict(extra="forbid")

    users: int = Field(2000, ge=5)
    items: int = Field(800, ge=5)
    interactions: int = Field(40_000, ge=25)
    clusters: int = Field(16, ge=2, le=4096)
    seed: int = 0
    images: bool = True
    image_size: int = Field(32, ge=8, le=512)
    min_user_interactions: int = Field(5, ge=1)
    min_item_interactions: int = Field(5, ge=1)
    taste_concentration: float = Field(0.08, gt=0, description="Dirichlet alpha per cluster; small = focused")
    taste_drift: float = Field(0.3, ge=0, le=1, description="how far taste moves by the end of a history")
    popularity_exponent: float = Field(0.8, ge=0, description="power-law exponent of popularity in a cluster")
    activity_sigma: float = Field(1.0, ge=0, description="log-normal sigma of user activity")
    noise: float = Field(0.05, ge=0, le=1, description="share of interactions drawn from global popularity")
    text_noise: float = Field(0.3, ge=0, le=1, description="chance a cluster word in the text is generic")
    image_noise: float = Field(0.12, ge=0, le=1, description="pixel noise std as a share of full scale")

    @model_validator(mode="after")
    def _feasible(self) -> SynthConfig:
        k_u, k_i = self.min_user_interactions, self.min_item_interactions
        if self.interactions < k_u * self.users or self.interactions < k_i * self.items:
            raise ValueError(f"interactions={self.interactions} is below the minimums {k_u}·users="
                             f"{k_u * self.users} and {k_i}·items={k_i * self.items}")
        if self.users < k_i or self.items < k_u:
            raise ValueError("need at least min_item_interactions users and min_user_interactions items")
        if self.clusters > self.items:
            raise ValueError(f"clusters={self.clusters} exceeds items={self.items}; every cluster needs an item")
        if self.interactions > MAX_USER_SHARE * self.users * self.items:
            raise ValueError(f"interactions={self.interactions} exceeds {MAX_USER_SHARE:.0%} of users×items; "
                             "pairs are unique, so ask for fewer interactions or more users/items")
        return self


def synthesize(config: SynthConfig, out: str | Path, *, workers: int | None = None, force: bool = False) -> Path:
    """Write the dataset to ``out`` (replaced atomically) and return it. ``workers`` (image processes,
    default: all CPUs) changes only the speed, never the output. An existing ``out`` is replaced only if it
    is an earlier synth output (or ``force``)."""
    out, started = Path(out), time.perf_counter()
    guard_output(out, OUTPUT_KIND, force=force)
    rng = np.random.default_rng(config.seed)
    item_cluster = rng.permutation(np.arange(config.items) % config.clusters)
    taste = _tastes(config, rng)
    users, items, times = _sample_pairs(config, item_cluster, taste, rng)
    frame = _timeline(config, users, items, times, item_cluster, taste, rng)
    log.info("synth.sampled", interactions=len(frame), seconds=round(time.perf_counter() - started, 2))
    records = _item_records(config, item_cluster, rng)
    with atomic_dir(out, kind=OUTPUT_KIND) as tmp:
        _write_csv(frame, tmp / "interactions.csv")
        with open(tmp / "items.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if config.images:
            _write_images(config, item_cluster, tmp / "images", workers)
        write_json(tmp / "synth.json", {
            "generator": "gatrec.data.synth", "format_version": 1, "config": config.model_dump(mode="json"),
            "counts": {"users": config.users, "items": config.items, "interactions": len(frame)},
            "clusters": [_cluster_info(c) for c in range(config.clusters)],
            "item_cluster": item_cluster.tolist(), "user_top_cluster": taste[0].argmax(axis=1).tolist(),
        })
    log.info("synth.done", out=str(out), seconds=round(time.perf_counter() - started, 2))
    return out


# --- sampling -----------------------------------------------------------------------------------------------


def _prevalence(n_clusters: int) -> np.ndarray:
    p = 1.0 / np.sqrt(np.arange(1, n_clusters + 1))  # some product types are more popular than others
    return p / p.sum()


def _tastes(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """(2, users, clusters): each user's taste at the start and at the end of their history."""
    alpha = cfg.taste_concentration * cfg.clusters * _prevalence(cfg.clusters)
    start = _dirichlet(alpha, cfg.users, rng)
    end = (1 - cfg.taste_drift) * start + cfg.taste_drift * _dirichlet(alpha, cfg.users, rng)
    return np.stack([start, end])


def _dirichlet(alpha: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    weights = rng.dirichlet(alpha, size=n) + 1e-12  # floor: tiny alphas can give exact zeros
    return weights / weights.sum(axis=1, keepdims=True)


class _RowSampler:
    """Samples a column for many rows of a (rows, k) weight matrix at once: the row CDFs are offset by the row
    index and flattened, so one ``searchsorted`` draws them all."""

    def __init__(self, weights: np.ndarray):
        cdf = np.cumsum(weights, axis=1, dtype=np.float64)  # in place from here: Electronics size is 200 MB
        cdf /= cdf[:, -1:]
        cdf[:, -1] = 1.0  # exact right edge: a draw below 1 never spills into the next row
        cdf += np.arange(len(weights))[:, None]
        self.k, self.flat = weights.shape[1], cdf.ravel()

    def __call__(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hit = np.searchsorted(self.flat, rows + rng.random(len(rows)), side="right")
        return np.minimum(hit - rows * self.k, self.k - 1)


def _user_degrees(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    k, cap = cfg.min_user_interactions, max(cfg.min_user_interactions, int(MAX_USER_SHARE * cfg.items))
    activity = rng.lognormal(0.0, cfg.activity_sigma, size=cfg.users)
    degree = k + rng.multinomial(cfg.interactions - k * cfg.users, activity / activity.sum())
    while (over := int(np.maximum(degree - cap, 0).sum())) > 0:  # hand the capped surplus to the others
        degree = np.minimum(degree, cap)
        room = activity * (degree < cap)
        degree += rng.multinomial(over, room / room.sum())
    return degree


def _fill_unique(owner: np.ndarray, width: int, taken: np.ndarray,
                 draw: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Partner for every slot such that the keys owner·width + partner are unique and not in ``taken``:
    draw for all open slots, keep the first copy of each new key, redraw the rest (``draw(slots, round)``)."""
    partner = np.empty(len(owner), dtype=np.int64)
    accepted, todo = np.sort(taken), np.arange(len(owner))
    for attempt in range(TASTE_ROUNDS + 100):
        if len(todo) == 0:
            return partner
        partner[todo] = draw(todo, attempt)
        keys, first = np.unique(owner[todo] * width + partner[todo], return_index=True)
        pos = np.searchsorted(accepted, keys)
        new = accepted[np.minimum(pos, len(accepted) - 1)] != keys if len(accepted) else np.ones(len(keys), bool)
        accepted = np.insert(accepted, pos[new], keys[new])  # stays sorted: O(n) memmove per round
        fresh = np.zeros(len(todo), dtype=bool)
        fresh[first[new]] = True
        todo = todo[~fresh]
    raise RuntimeError(f"could not place {len(todo)} unique pairs; lower the density")


def _sample_pairs(cfg: SynthConfig, item_cluster: np.ndarray, taste: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_u, n_i, n_c = cfg.users, cfg.items, cfg.clusters
    degree = _user_degrees(cfg, rng)
    # Popularity: a random power-law rank inside each cluster; items grouped by cluster (padded) for sampling.
    order = np.lexsort((rng.random(n_i), item_cluster))
    sizes = np.bincount(item_cluster, minlength=n_c)
    offset = np.cumsum(sizes) - sizes
    rank = np.empty(n_i, dtype=np.int64)
    rank[order] = np.arange(n_i) - np.repeat(offset, sizes) + 1
    pop = rank.astype(np.float64) ** -cfg.popularity_exponent
    grid = np.zeros((n_c, sizes.max()))
    grid[item_cluster[order], rank[order] - 1] = pop[order]
    in_cluster = _RowSampler(grid)
    at = lambda c, r: order[offset[c] + np.minimum(r, sizes[c] - 1)]  # noqa: E731 (cluster, rank-1) -> item
    overall = _RowSampler((pop / np.bincount(item_cluster, pop)[item_cluster]
                           * _prevalence(n_c)[item_cluster])[None, :])
    by_taste = _RowSampler(taste.reshape(2 * n_u, n_c))

    # 1) each item's minimum: distinct users picked by taste × activity (uniform for stubborn leftovers).
    g_items = np.repeat(np.arange(n_i), cfg.min_item_interactions)
    users_for = _RowSampler((taste[0] * degree[:, None]).T)
    g_users = _fill_unique(g_items, n_u, np.zeros(0, np.int64), lambda s, r: (
        users_for(item_cluster[g_items[s]], rng) if r < TASTE_ROUNDS else rng.integers(n_u, size=len(s))))

    # 2) the rest of each user's degree, minus the overshoot of users the item minimums pushed past it.
    have = np.bincount(g_users, minlength=n_u)
    rest = np.maximum(degree - have, 0)
    excess = int(have.sum() + rest.sum()) - cfg.interactions
    removable = rest - np.maximum(cfg.min_user_interactions - have, 0)
    if excess > 0 and removable.sum() > 0:
        pick = rng.choice(removable.sum(), size=min(excess, int(removable.sum())), replace=False)
        rest -= np.bincount(np.repeat(np.arange(n_u), removable)[pick], minlength=n_u)
    r_users = np.repeat(np.arange(n_u), rest)
    r_times = rng.random(len(r_users))

    def draw_items(slots: np.ndarray, attempt: int) -> np.ndarray:
        if attempt >= TASTE_ROUNDS:  # heavy users whose favourites are used up; ≥ 75% of items are free
            return rng.integers(n_i, size=len(slots))
        late = (rng.random(len(slots)) < r_times[slots]).astype(np.int64)  # drift: later → end taste
        cluster = by_taste(r_users[slots] + n_u * late, rng)
        item = at(cluster, in_cluster(cluster, rng))
        noisy = rng.random(len(slots)) < cfg.noise
        item[noisy] = overall(np.zeros(int(noisy.sum()), np.int64), rng)
        return item

    r_items = _fill_unique(r_users, n_i, g_users.astype(np.int64) * n_i + g_items, draw_items)
    return (np.concatenate([g_users, r_users]), np.concatenate([g_items, r_items]),
            np.concatenate([rng.random(len(g_users)), r_times]))


def _timeline(cfg: SynthConfig, users: np.ndarray, items: np.ndarray, times: np.ndarray,
              item_cluster: np.ndarray, taste: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Sort each user's interactions by time into ordinals 0..n-1 and rate them by taste affinity."""
    cluster = item_cluster[items]
    affinity = (1 - times) * taste[0, users, cluster] + times * taste[1, users, cluster]
    lift = np.log2(np.maximum(affinity * cfg.clusters, 1 / 16))  # > 0 for clusters liked above average
    rating = np.clip(np.rint(3.4 + 0.6 * lift + rng.normal(0, 0.7, len(users))), 1, 5).astype(np.int8)
    order = np.lexsort((times, users))
    users, items, rating = users[order], items[order], rating[order]
    counts = np.bincount(users, minlength=cfg.users)
    ordinal = np.arange(len(users)) - np.repeat(np.cumsum(counts) - counts, counts)
    return pd.DataFrame({"user": users, "item": items, "timestamp": ordinal, "rating": rating})


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """pyarrow writes 1.7M rows in well under a second (pandas.to_csv takes ~10x longer)."""
    user_ids = pa.array(np.char.add("u", np.arange(frame["user"].max() + 1).astype(str)))
    item_ids = pa.array(np.char.add("i", np.arange(frame["item"].max() + 1).astype(str)))
    table = pa.table({"user_id": user_ids.take(pa.array(frame["user"].to_numpy())),
                      "item_id": item_ids.take(pa.array(frame["item"].to_numpy())),
                      "timestamp": frame["timestamp"].to_numpy(), "rating": frame["rating"].to_numpy()})
    with open(path, "wb") as fh:
        fh.write(b"user_id,item_id,timestamp,rating\n")  # unquoted header, like the other folders
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))


# --- item text ----------------------------------------------------------------------------------------------


def _cluster_info(c: int) -> dict:
    name, department, nouns, features = CATALOG[c % len(CATALOG)]
    series = SERIES[(c // len(CATALOG) - 1) % len(SERIES)] if c >= len(CATALOG) else ""
    # three brands per cluster sharing the cluster's suffix (so sub-word tokens carry the cluster too)
    suffix = BRAND_TAILS[c % len(BRAND_TAILS)] + (str(c // len(BRAND_TAILS)) if c >= len(BRAND_TAILS) else "")
    brands = [BRAND_HEADS[b % len(BRAND_HEADS)] + suffix for b in range(3 * c, 3 * c + 3)]
    return {"index": c, "name": f"{series} {name}".strip(), "department": department, "series": series,
            "nouns": list(nouns), "features": list(features), "brands": brands}


def _item_records(cfg: SynthConfig, item_cluster: np.ndarray, rng: np.random.Generator) -> list[dict]:
    info = [_cluster_info(c) for c in range(cfg.clusters)]
    slots = 8
    noise, pick = rng.random((cfg.items, slots)) < cfg.text_noise, rng.integers(0, 1 << 30, (cfg.items, 2 * slots))
    model = rng.integers(100, 10_000, cfg.items)
    records = []
    for i, c in enumerate(item_cluster.tolist()):
        ci, k = info[c], pick[i].tolist()
        feats, nouns = ci["features"], ci["nouns"]
        word = [GENERIC_WORDS[k[s] % len(GENERIC_WORDS)] if noise[i, s] else feats[k[s] % len(feats)]
                for s in range(slots)]
        generic = [GENERIC_WORDS[k[slots + s] % len(GENERIC_WORDS)] for s in range(slots)]
        noun, noun2 = nouns[k[0] % len(nouns)], nouns[k[1] % len(nouns)]
        brand = ci["brands"][k[2] % 3]
        series = f"{ci['series']} " if ci["series"] else ""
        record = {
            "item_id": f"i{i}",
            "title": f"{brand} {series}{word[0]} {word[1]} {noun} {brand[:2].upper()}-{model[i]}, "
                     f"{COLORS[k[3] % len(COLORS)]}",
            "description": f"{word[2].capitalize()} {noun2} with {word[3]} {generic[0]} and {word[4]} "
                           f"{generic[1]}. {generic[2].capitalize()} {generic[3]} for {word[5]} {generic[4]} "
                           f"use, {word[6]} and {generic[5]}; {word[7]} {generic[6]} by {brand}.",
            "brand": brand,
            "categories": ["Electronics", ci["department"], ci["name"]],
        }
        if cfg.images:
            record["image"] = f"images/i{i}.png"
        records.append(record)
    return records


# --- images -------------------------------------------------------------------------------------------------


def _palette(n_clusters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per cluster: main and second colour (RGB in 0..1), pattern id and stripe frequency."""
    hue = (np.arange(n_clusters) * 0.618034) % 1.0  # golden-ratio steps keep hues apart for any count
    main = np.array([colorsys.hsv_to_rgb(h, 0.7, 0.92) for h in hue])
    second = np.array([colorsys.hsv_to_rgb((h + 0.12) % 1.0, 0.85, 0.35) for h in hue])
    c = np.arange(n_clusters)
    return main, second, c % 6, 2.0 + (c // 6) % 4


def _pattern(kind: int, x: np.ndarray, y: np.ndarray, f: np.ndarray, phase: np.ndarray) -> np.ndarray:
    wave = lambda v: np.sin(2 * np.pi * (f * v + phase))  # noqa: E731
    if kind == 0:
        return wave(y)
    if kind == 1:
        return wave(x)
    if kind == 2:
        return wave((x + y) / 1.414)
    if kind == 3:
        return np.sign(wave(x) * wave(y))
    if kind == 4:
        return wave(2 * np.hypot(x - 0.5, y - 0.5))
    return 2 * (wave(x) * wave(y) > 0.4) - 1.0


def _render_chunk(task: tuple[int, int, np.ndarray, int, str, int, int, float]) -> int:
    """Render and save one chunk of item images; seeded per chunk, so the worker count never matters."""
    index, start, clusters, n_clusters, folder, size, seed, noise = task
    rng = np.random.default_rng([seed, 1, index])
    main, second, kinds, freq = _palette(n_clusters)
    n = len(clusters)
    y, x = (np.mgrid[0:size, 0:size] / size)[:, None]
    f = (freq[clusters] * rng.uniform(0.85, 1.15, n))[:, None, None]
    phase = rng.random(n)[:, None, None]
    mix = np.empty((n, size, size))
    for kind in np.unique(kinds[clusters]):
        sel = kinds[clusters] == kind
        mix[sel] = (_pattern(int(kind), x, y, f[sel], phase[sel]) + 1) / 2
    jitter = rng.normal(0, 0.06, (n, 1, 1, 3))
    pixels = (main[clusters][:, None, None] * (1 - mix[..., None]) + second[clusters][:, None, None]
              * mix[..., None] + jitter + rng.normal(0, noise, (n, size, size, 3)))
    pixels = np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    for j in range(n):
        Image.fromarray(pixels[j], "RGB").save(Path(folder) / f"i{start + j}.png", format="PNG")
    return n


def _write_images(cfg: SynthConfig, item_cluster: np.ndarray, folder: Path, workers: int | None) -> None:
    folder.mkdir()
    chunk = max(16, min(1024, (1 << 21) // cfg.image_size**2))  # bounds the float pixel buffer per task
    tasks = [(n, s, item_cluster[s:s + chunk], cfg.clusters, str(folder), cfg.image_size, cfg.seed,
              cfg.image_noise)
             for n, s in enumerate(range(0, cfg.items, chunk))]
    workers = min(workers or os.cpu_count() or 1, len(tasks))
    bar = tqdm(total=cfg.items, desc="images", unit="img", disable=None)
    with bar:
        if workers <= 1:
            for task in tasks:
                bar.update(_render_chunk(task))
        else:  # spawn: safe even when the caller has threads (torch) running
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                for done in pool.map(_render_chunk, tasks):
                    bar.update(done)
