"""Satellite corpus reader: PNG/JPEG tiles (and image parquet files) as in :mod:`.images`, plus GeoTIFFs.

GeoTIFF (``*.tif``, ``*.tiff``, read with ``tifffile``):

- A raster larger than ``2 * tile_px`` in *both* dimensions is cut into non-overlapping ``tile_px`` x
  ``tile_px`` tiles (partial tiles at the right/bottom edges are dropped), id ``"<relpath>#r<row>c<col>"``,
  where ``row``/``col`` are tile indices (not pixels). Otherwise the whole raster is one tile with id
  ``"<relpath>"``.
- Bands: ``bands`` (three 0-based band indices) picks the RGB bands; e.g. for a Landsat-7 ETM+ stack of bands
  1..7 the natural-colour composite is bands 3,2,1 i.e. ``bands=(2, 1, 0)`` (Sentinel-2 B4,B3,B2 likewise).
  Default (``None``): the first three bands when there are >= 3, a single band replicated to grey.
  A band count that does not fit (an index out of range, or 2 bands with ``bands=None``) raises CorpusError
  naming the file, its band count and the requested bands.
- Each selected band gets a 2nd-98th percentile stretch to uint8. Percentiles are computed per band over the
  whole raster (on a strided sample of at most ~4M pixels; non-finite values and zeros -- no-data borders --
  ignored), so that all tiles of a scene share one colour mapping. NaN/inf become 0; a constant band is 0.
- Tiles are encoded as PNG bytes (``image`` column); labels as for images (parent folder; ``labels.csv``
  may list a tile id or the GeoTIFF's relative path, which then labels all its tiles).
- Skip ``blank_tile``: a tile whose selected bands are all non-finite or all exactly zero (no-data borders).
- Skip ``unreadable_raster`` (counted per file): a ``.tif`` that tifffile cannot read -- like corrupt PNG/JPEG
  bytes, a corrupt file does not stop the corpus.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ._common import CorpusError, CorpusIterator, SkipCounts
from .images import IMAGE_SUFFIXES, _iter_corpus

TIFF_SUFFIXES = (".tif", ".tiff")
_MAX_SAMPLE = 4_000_000


def iter_satellite_corpus(
    directory: Path,
    tile_px: int = 64,
    bands: tuple[int, int, int] | None = None,
    batch_rows: int = 2_000,
    root: Path | None = None,
) -> CorpusIterator:
    """Stream the satellite corpus under ``directory`` as ``id, image (PNG/JPEG bytes), label`` DataFrames.

    Returns a :class:`CorpusIterator` (``.skipped`` holds the skip counts after iteration).
    """
    if tile_px < 1:
        raise ValueError(f"tile_px must be >= 1, got {tile_px}")
    if bands is not None:
        bands = tuple(int(b) for b in bands)
        if len(bands) != 3 or min(bands) < 0:
            raise ValueError(f"bands must be three 0-based band indices, got {bands}")

    def handle(path: Path, rel: str, skipped: SkipCounts) -> Iterator[tuple[str, bytes, dict | None]]:
        return _tiles(path, rel, tile_px, bands, skipped)

    return _iter_corpus(
        Path(directory),
        batch_rows,
        IMAGE_SUFFIXES + TIFF_SUFFIXES + (".parquet",),
        "*.tif/*.tiff GeoTIFFs, *.png/*.jpg/*.jpeg/*.webp tiles or image *.parquet files",
        {s: handle for s in TIFF_SUFFIXES},
        root,
    )


def _read_raster(path: Path) -> np.ndarray:
    """-> array (bands, Y, X). Memory-maps uncompressed files when possible."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes
        try:
            arr = tifffile.memmap(path, mode="r")
        except Exception:
            arr = series.asarray()
    if arr.ndim != len(axes):
        raise ValueError(f"array shape {arr.shape} does not match axes {axes!r}")
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"no spatial axes in {axes!r}")
    other = [i for i, a in enumerate(axes) if a not in "YX"]
    arr = np.transpose(arr, other + [axes.index("Y"), axes.index("X")])
    return arr.reshape((-1,) + arr.shape[-2:])


def _stretch(band: np.ndarray) -> np.ndarray:
    """2-98 percentile stretch of one band (Y, X) -> uint8."""
    step = max(1, int(np.ceil(np.sqrt(band.size / _MAX_SAMPLE))))
    sample = np.asarray(band[::step, ::step], dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    nonzero = sample[sample != 0]  # 0 is treated as no-data (scene borders) for the statistics
    if nonzero.size:
        sample = nonzero
    out = np.zeros(band.shape, dtype=np.uint8)
    if sample.size == 0:
        return out
    lo, hi = np.percentile(sample, [2, 98])
    b = np.asarray(band, dtype=np.float32)
    if hi <= lo:  # constant band
        return out
    scaled = (b - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    np.clip(scaled, 0, 255, out=scaled)
    scaled[~np.isfinite(scaled)] = 0
    return (scaled + 0.5).astype(np.uint8)


def _select_bands(n: int, bands: tuple[int, int, int] | None, rel: str) -> list[int]:
    if bands is None:
        if n >= 3:
            return [0, 1, 2]
        if n == 1:
            return [0, 0, 0]
    elif max(bands) < n:
        return list(bands)
    want = "bands=None (needs 1 or >= 3 bands)" if bands is None else f"bands={bands}"
    raise CorpusError(f"{rel}: raster has {n} band(s) but {want} was requested (0-based band indices)")


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _georeference(path: Path) -> tuple[str | None, float, float, float, float] | None:
    """(CRS, x of the left edge, y of the top edge, pixel width, pixel height) of a GeoTIFF whose model
    tie point and pixel scale are known (a north-up raster), else None."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        geo = tif.geotiff_metadata or {}
    tie, scale = geo.get("ModelTiepoint"), geo.get("ModelPixelScale")
    if tie is None or scale is None or len(tie) < 6 or len(scale) < 2:
        return None
    code = geo.get("ProjectedCSTypeGeoKey") or geo.get("GeographicTypeGeoKey")
    code = getattr(code, "value", code)
    crs = f"EPSG:{int(code)}" if isinstance(code, int | np.integer) and 1024 <= int(code) < 32767 else None
    i, j, _, x, y = (float(v) for v in tie[:5])
    return crs, x - i * float(scale[0]), y + j * float(scale[1]), float(scale[0]), float(scale[1])


def _tile_georef(geo, y0: int, y1: int, x0: int, x1: int) -> dict | None:
    if geo is None:
        return None
    crs, left, top, dx, dy = geo
    return {"crs": crs, "x_min": left + x0 * dx, "x_max": left + x1 * dx, "y_min": top - y1 * dy,
            "y_max": top - y0 * dy}


def _tiles(
    path: Path, rel: str, tile_px: int, bands: tuple[int, int, int] | None, skipped: SkipCounts
) -> Iterator[tuple[str, bytes, dict | None]]:
    """(tile id, PNG bytes, georeference) of every tile of one raster that is not blank."""
    try:
        raster = _read_raster(path)
        geo = _georeference(path)
    except Exception as e:
        skipped.add("unreadable_raster", example=f"{rel}: {e}")
        return
    sel = _select_bands(raster.shape[0], bands, rel)
    h, w = raster.shape[1:]
    uniq = sorted(set(sel))
    raw = {b: raster[b] for b in uniq}
    stretched = {b: _stretch(raw[b]) for b in uniq}
    rgb = np.stack([stretched[b] for b in sel], axis=-1)  # (Y, X, 3) uint8

    def blank(y0: int, y1: int, x0: int, x1: int) -> bool:
        for b in uniq:
            t = np.asarray(raw[b][y0:y1, x0:x1])
            if np.any(np.isfinite(t) & (t != 0)):
                return False
        return True

    if h > 2 * tile_px and w > 2 * tile_px:
        for r in range(h // tile_px):
            for c in range(w // tile_px):
                y0, x0 = r * tile_px, c * tile_px
                tid = f"{rel}#r{r}c{c}"
                if blank(y0, y0 + tile_px, x0, x0 + tile_px):
                    skipped.add("blank_tile", example=tid)
                    continue
                yield tid, _png(rgb[y0 : y0 + tile_px, x0 : x0 + tile_px]), \
                    _tile_georef(geo, y0, y0 + tile_px, x0, x0 + tile_px)
    else:
        if blank(0, h, 0, w):
            skipped.add("blank_tile", example=rel)
            return
        yield rel, _png(rgb), _tile_georef(geo, 0, h, 0, w)


__all__ = ["iter_satellite_corpus", "CorpusIterator"]
