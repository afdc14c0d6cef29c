from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile
from PIL import Image

from curation_assets.readers import CorpusError, iter_image_corpus, iter_satellite_corpus

SCHEMA = pl.Schema({"id": pl.String, "image": pl.Binary, "label": pl.String})


def _png(value: int = 0, size: int = 28, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8), mode="L").convert(mode).save(buf, "PNG")
    return buf.getvalue()


def _collect(it) -> pl.DataFrame:
    return pl.concat(list(it))


def test_image_folders_with_labels(tmp_path: Path) -> None:
    for label in ("cats", "dogs"):
        (tmp_path / label).mkdir()
        for i in range(3):
            (tmp_path / label / f"{i}.PNG").write_bytes(_png(i))
    (tmp_path / "loose.jpeg").write_bytes(_png(9))
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("ignored")
    it = iter_image_corpus(tmp_path, batch_rows=4)
    frames = list(it)
    assert [f.height for f in frames] == [4, 4]
    df = pl.concat(frames)
    assert df.schema == SCHEMA
    assert df["id"].to_list() == [
        "cats/0.PNG", "cats/1.PNG", "cats/2.PNG", "corrupt.jpg", "dogs/0.PNG", "dogs/1.PNG", "dogs/2.PNG",
        "loose.jpeg",
    ]  # fmt: skip
    assert df["label"].to_list() == ["cats"] * 3 + [None] + ["dogs"] * 3 + [None]
    assert df.filter(pl.col("id") == "dogs/1.PNG")["image"][0] == (tmp_path / "dogs" / "1.PNG").read_bytes()
    # corrupt bytes pass through (the embedder reports them); zero-byte files are skipped
    assert df.filter(pl.col("id") == "corrupt.jpg")["image"][0].startswith(b"\xff\xd8")
    assert dict(it.skipped) == {"empty_image": 1}


def test_labels_csv_overrides(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(_png())
    (tmp_path / "y.png").write_bytes(_png())
    (tmp_path / "labels.csv").write_text("id,label\ny.png,bird\nmissing.png,fish\n")
    it = iter_image_corpus(tmp_path)
    df = _collect(it)
    assert dict(zip(df["id"], df["label"], strict=True)) == {"a/x.png": "a", "y.png": "bird"}
    assert it.skipped["labels_csv_unmatched"] == 1


def test_labels_csv_bad_columns(tmp_path: Path) -> None:
    (tmp_path / "y.png").write_bytes(_png())
    (tmp_path / "labels.csv").write_text("file,class\ny.png,bird\n")
    with pytest.raises(CorpusError, match=r"labels\.csv.*'id' and 'label'"):
        iter_image_corpus(tmp_path)


def test_image_parquet(tmp_path: Path) -> None:
    blobs = [_png(1), None, _png(2)]
    pl.DataFrame(
        {"image": blobs, "label": ["p", "q", ""]}, schema={"image": pl.Binary, "label": pl.String}
    ).write_parquet(tmp_path / "noid.parquet")
    # Hugging Face `datasets` layout: image = struct{bytes, path}
    hf = pl.DataFrame({"id": [5], "image": [{"bytes": _png(3), "path": "a.png"}]})
    hf.write_parquet(tmp_path / "hf.parquet")
    it = iter_image_corpus(tmp_path)
    df = _collect(it)
    assert df.schema == SCHEMA
    assert df["id"].to_list() == ["5", "noid.parquet#0", "noid.parquet#2"]
    assert df["label"].to_list() == [None, "p", None]
    assert df["image"][0] == _png(3)
    assert dict(it.skipped) == {"empty_image": 1}


def test_image_parquet_errors(tmp_path: Path) -> None:
    pl.DataFrame({"pixels": [b"x"]}).write_parquet(tmp_path / "a.parquet")
    with pytest.raises(CorpusError, match=r"a\.parquet.*'image'.*pixels"):
        list(iter_image_corpus(tmp_path))
    pl.DataFrame({"image": ["not bytes"]}).write_parquet(tmp_path / "a.parquet")
    with pytest.raises(CorpusError, match=r"a\.parquet.*must hold encoded image bytes"):
        list(iter_image_corpus(tmp_path))


def test_duplicate_id_between_parquet_and_folder(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(_png())
    pl.DataFrame({"id": ["x.png"], "image": [_png()]}).write_parquet(tmp_path / "z.parquet")
    with pytest.raises(CorpusError, match=r"duplicate id 'x\.png'.*x\.png.*z\.parquet row 0"):
        list(iter_image_corpus(tmp_path))


def test_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no readable file under"):
        iter_image_corpus(tmp_path)


# --- satellite ---


def _decode(b: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(b)))


def test_geotiff_tiling_and_band_selection(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scene = rng.integers(1, 4000, size=(200, 150, 4), dtype=np.uint16)  # Y, X, bands
    scene[:, :, 2] = 4000  # make band 2 bright so we can see which band lands in R
    scene[:, :, 0] = np.linspace(1, 3000, 150, dtype=np.uint16)[None, :]
    scene[:64, :64] = 0  # no-data corner -> blank tile r0c0
    (tmp_path / "forest").mkdir()
    tifffile.imwrite(
        tmp_path / "forest" / "scene.tif", scene, photometric="minisblack", planarconfig="contig"
    )
    it = iter_satellite_corpus(tmp_path, tile_px=64, bands=(2, 1, 0))
    df = _collect(it)
    assert df.drop("georef").schema == SCHEMA and df["georef"].null_count() == len(df)  # no geo tags
    # 200x150 > 2*64 in both dims -> 3x2 tiles, partial edges dropped, r0c0 blank
    assert df["id"].to_list() == [f"forest/scene.tif#r{r}c{c}" for r in range(3) for c in range(2)][1:]
    assert set(df["label"]) == {"forest"}
    assert dict(it.skipped) == {"blank_tile": 1}
    tile = _decode(df["image"][0])  # r0c1
    assert tile.shape == (64, 64, 3) and tile.dtype == np.uint8
    # R = band 2 is constant -> 0 after stretch; B = band 0 is a left-to-right ramp -> increases with x
    assert tile[..., 0].max() == 0
    assert tile[0, -1, 2] > tile[0, 0, 2]


def test_geotiff_tiles_carry_their_georeference(tmp_path: Path) -> None:
    scene = np.random.default_rng(1).integers(1, 4000, size=(130, 200, 3), dtype=np.uint16)
    # GeoTIFF tags: 30 m pixels, top-left corner at (500000 E, 4200000 N) in UTM zone 33N (EPSG:32633)
    geokeys = (1, 1, 0, 2, 1024, 0, 1, 1, 3072, 0, 1, 32633)
    tifffile.imwrite(tmp_path / "utm.tif", scene, photometric="rgb", extratags=[
        (33550, "d", 3, (30.0, 30.0, 0.0)), (33922, "d", 6, (0.0, 0.0, 0.0, 500000.0, 4200000.0, 0.0)),
        (34735, "H", len(geokeys), geokeys)])
    df = _collect(iter_satellite_corpus(tmp_path, tile_px=64))
    assert df["id"].to_list() == ["utm.tif#r0c0", "utm.tif#r0c1", "utm.tif#r0c2",
                                  "utm.tif#r1c0", "utm.tif#r1c1", "utm.tif#r1c2"]
    r1c2 = df.filter(pl.col("id") == "utm.tif#r1c2")["georef"][0]
    assert r1c2 == {"crs": "EPSG:32633", "x_min": 500000.0 + 128 * 30, "x_max": 500000.0 + 192 * 30,
                    "y_min": 4200000.0 - 128 * 30, "y_max": 4200000.0 - 64 * 30}


def test_small_geotiff_is_one_tile_and_single_band_is_grey(tmp_path: Path) -> None:
    arr = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)
    arr[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "small.tiff", arr)
    df = _collect(iter_satellite_corpus(tmp_path, tile_px=64))
    assert df["id"].to_list() == ["small.tiff"] and df["label"].to_list() == [None]
    img = _decode(df["image"][0])
    assert img.shape == (100, 100, 3)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert img[0, 0, 0] == 0 and img[-1, -1, 0] == 255  # NaN -> 0; top of the 98th percentile saturates


def test_band_first_layout(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).random((5, 40, 30)).astype(np.float32)  # bands, Y, X
    tifffile.imwrite(tmp_path / "b.tif", arr, photometric="minisblack", planarconfig="separate")
    df = _collect(iter_satellite_corpus(tmp_path, bands=(4, 3, 2)))
    assert _decode(df["image"][0]).shape == (40, 30, 3)


@pytest.mark.parametrize(("n_bands", "bands"), [(4, (2, 1, 5)), (2, None), (1, (0, 1, 2))])
def test_wrong_bands(tmp_path: Path, n_bands: int, bands) -> None:
    arr = np.ones((n_bands, 20, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "x.tif", arr if n_bands > 1 else arr[0], photometric="minisblack")
    expected = rf"x\.tif: raster has {n_bands} band.*" + re.escape(f"bands={bands}")
    with pytest.raises(CorpusError, match=expected):
        list(iter_satellite_corpus(tmp_path, bands=bands))


def test_corrupt_tiff_is_skipped_and_pngs_pass(tmp_path: Path) -> None:
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "tile.png").write_bytes(_png(5, mode="RGB"))
    it = iter_satellite_corpus(tmp_path)
    df = _collect(it)
    assert df["id"].to_list() == ["tile.png"]
    assert dict(it.skipped) == {"unreadable_raster": 1}


def test_bands_argument_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="three 0-based"):
        iter_satellite_corpus(tmp_path, bands=(0, 1))
