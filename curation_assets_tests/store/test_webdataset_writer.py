from __future__ import annotations

import io
import json
from urllib.parse import unquote

import pyarrow as pa
import pytest
from PIL import Image

from curation_assets.readers import SkipCounts
from curation_assets.readers.webdataset import iter_webdataset_frames
from curation_assets.store.webdataset import WebDatasetWriter, image_extension, sample_key

wds = pytest.importorskip("webdataset")

GEOREF = pa.struct([("crs", pa.string()), ("x_min", pa.float64()), ("y_min", pa.float64()),
                    ("x_max", pa.float64()), ("y_max", pa.float64())])
IDS = ["cats/a.b.png", "dogs/../x.jpg", "été/ü.png", "plain", "100%.png", "a_b-c~d"]


def _encoded(fmt: str, color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(buf, fmt)
    return buf.getvalue()


def _image_table(struct_images: bool) -> pa.Table:
    blobs = [_encoded("PNG" if i % 2 else "JPEG", (40 * i, 10, 200)) for i in range(len(IDS))]
    images = pa.array([{"bytes": b, "path": None} for b in blobs], pa.struct([("bytes", pa.binary()),
                                                                                ("path", pa.string())])) \
        if struct_images else pa.array(blobs, pa.binary())
    return pa.table({
        "id": IDS,
        "image": images,
        "label": ["cats", "3", None, "dogs", "0", "cats"],
        "cluster_level_1": [0, 1, 0, 2, 1, 0],
        "cluster_level_2": [0, 0, 0, 1, 0, 0],
        "georef": pa.array([{"crs": "EPSG:4326", "x_min": 0.0, "y_min": 1.0, "x_max": 2.0, "y_max": 3.0}] + [None] * 5,
                           GEOREF),
    })


def _write(directory, tables, shard_rows=4, shard_bytes=1 << 30):
    writer = WebDatasetWriter(directory, shard_rows=shard_rows, shard_bytes=shard_bytes)
    for table in tables:
        writer.write(table)
    return writer.publish()


def _library_samples(paths, decode: bool = False) -> list[dict]:
    dataset = wds.WebDataset([str(p) for p in paths], shardshuffle=False)
    return list(dataset.decode("pil") if decode else dataset)


@pytest.mark.parametrize("struct_images", [True, False])
def test_the_webdataset_library_reads_back_exactly_the_rows_written(tmp_path, struct_images) -> None:
    table = _image_table(struct_images)
    paths = _write(tmp_path, [table.slice(0, 4), table.slice(4)], shard_rows=4)
    assert [p.name for p in paths] == ["train-00000-of-00002.tar", "train-00001-of-00002.tar"]
    assert all(p.parent == tmp_path / "webdataset" for p in paths)
    samples = _library_samples(paths)
    blobs = [b["bytes"] for b in table["image"].to_pylist()] if struct_images else table["image"].to_pylist()
    assert [json.loads(s["json"])["id"] for s in samples] == IDS
    assert [unquote(s["__key__"]) for s in samples] == IDS  # the key decodes back to the id
    assert [s.get("png", s.get("jpg")) for s in samples] == blobs
    assert [("png" in s, "jpg" in s) for s in samples] == [(i % 2 == 1, i % 2 == 0) for i in range(len(IDS))]
    meta = [json.loads(s["json"]) for s in samples]
    assert [m["label"] for m in meta] == table["label"].to_pylist()
    assert [m["cluster_level_1"] for m in meta] == table["cluster_level_1"].to_pylist()
    assert meta[0]["georef"] == {"crs": "EPSG:4326", "x_min": 0.0, "y_min": 1.0, "x_max": 2.0, "y_max": 3.0}
    assert "image" not in meta[0]
    assert [s.get("cls") for s in samples] == [None, b"3", None, None, b"0", None]  # integer labels only


def test_decoded_by_the_library_labels_and_images_come_back(tmp_path) -> None:
    samples = _library_samples(_write(tmp_path, [_image_table(struct_images=False)]), decode=True)
    assert [s["json"]["label"] for s in samples] == ["cats", "3", None, "dogs", "0", "cats"]
    assert [s.get("cls") for s in samples] == [None, 3, None, None, 0, None]
    assert samples[0]["jpg"].size == (4, 3) and samples[1]["png"].mode == "RGB"  # decoded to PIL images


def test_text_rows_and_shards_bounded_by_bytes(tmp_path) -> None:
    texts = [f"text number {i} " * 50 for i in range(10)]
    table = pa.table({"id": [f"doc/{i}.txt" for i in range(10)], "text": texts, "label": ["a"] * 10,
                      "cluster_level_1": list(range(10))})
    paths = _write(tmp_path, [table], shard_rows=100, shard_bytes=3000)
    assert len(paths) == 5  # a sample is 2.5 kB of tar (3 headers, text, json): a shard closes after its second
    samples = _library_samples(paths)
    assert [s["txt"].decode() for s in samples] == texts
    assert [json.loads(s["json"])["id"] for s in samples] == table["id"].to_pylist()


def test_our_reader_reads_the_written_shards(tmp_path) -> None:
    table = _image_table(struct_images=True)
    (path,) = _write(tmp_path, [table], shard_rows=100)
    skipped = SkipCounts()
    (frame,) = iter_webdataset_frames(path, "train.tar", "image", 100, skipped)
    assert [unquote(i.removeprefix("train.tar/")) for i in frame["id"].to_list()] == IDS
    assert frame["image"].to_list() == [b["bytes"] for b in table["image"].to_pylist()]
    assert frame["label"].to_list() == table["label"].to_pylist()
    assert dict(skipped) == {}


def test_publish_replaces_abort_drops_and_bytes_are_reproducible(tmp_path) -> None:
    table = _image_table(struct_images=False)
    first = [p.read_bytes() for p in _write(tmp_path, [table], shard_rows=3)]
    second = _write(tmp_path, [table], shard_rows=3)
    assert [p.read_bytes() for p in second] == first  # same rows, same bytes
    assert len(_write(tmp_path, [table.slice(0, 2)], shard_rows=3)) == 1
    assert sorted(p.name for p in (tmp_path / "webdataset").iterdir()) == ["train-00000-of-00001.tar"]
    writer = WebDatasetWriter(tmp_path, shard_rows=3, shard_bytes=1 << 20)
    writer.write(table)
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["webdataset"]


def test_keys_hold_no_dot_or_slash_and_magic_picks_the_extension() -> None:
    keys = [sample_key(i) for i in IDS]
    assert all("." not in k and "/" not in k for k in keys) and len(set(keys)) == len(IDS)
    assert [unquote(k) for k in keys] == IDS
    assert image_extension(_encoded("PNG", (0, 0, 0))) == "png"
    assert image_extension(_encoded("JPEG", (0, 0, 0))) == "jpg"
    assert image_extension(_encoded("WEBP", (0, 0, 0))) == "webp"
    assert image_extension(b"not an image") == "bin"


def test_a_row_without_content_is_refused(tmp_path) -> None:
    writer = WebDatasetWriter(tmp_path, shard_rows=3, shard_bytes=1 << 20)
    with pytest.raises(ValueError, match="'x' has no image"):
        writer.write(pa.table({"id": ["x"], "image": pa.array([None], pa.binary()), "label": [None]}))
    writer.abort()
