from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import polars as pl
import pytest

from curation_assets.readers import CorpusError, SkipCounts
from curation_assets.readers.webdataset import iter_webdataset_frames

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24  # bytes pass through undecoded: any content will do
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 24


def _shard(path: Path, members: list[tuple[str, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _read(path: Path, content: str, batch_rows: int = 100, rel: str = "shards/a.tar"):
    skipped = SkipCounts()
    frames = list(iter_webdataset_frames(path, rel, content, batch_rows, skipped))
    return frames, skipped


def test_images_with_cls_json_and_missing_labels(tmp_path) -> None:
    shard = _shard(tmp_path / "a.tar", [
        ("s1.jpg", JPEG), ("s1.cls", b"7\n"), ("s1.json", b'{"label": "ignored: cls wins"}'),
        ("sub/s2.PNG", PNG), ("sub/s2.json", b'{"label": "cats", "width": 3}'),
        ("s3.webp", b"RIFF0000WEBP"), ("s3.txt", b"a caption, not needed for images"),
        ("s4.jpeg", JPEG), ("s4.json", b'{"label": null}'),
    ])
    frames, skipped = _read(shard, "image")
    assert len(frames) == 1
    df = frames[0]
    assert df.schema == {"id": pl.String, "image": pl.Binary, "label": pl.String}
    assert df["id"].to_list() == ["shards/a.tar/s1", "shards/a.tar/sub/s2", "shards/a.tar/s3", "shards/a.tar/s4"]
    assert df["image"].to_list() == [JPEG, PNG, b"RIFF0000WEBP", JPEG]
    assert df["label"].to_list() == ["7", "cats", None, None]
    assert dict(skipped) == {}


def test_text_content_and_skips_are_counted(tmp_path) -> None:
    shard = _shard(tmp_path / "t.tar", [
        ("a.txt", "héllo wörld".encode()), ("a.json", b'{"label": 3}'),
        ("b.jpg", JPEG), ("b.cls", b"1"),  # no text member: skipped
        ("c.txt", b"   "),  # blank text: skipped
        ("d.seg.txt", b"a multi-dot extension is another field, not the content"),
        ("README", b"no extension: ignored"),
        ("e.txt", b"kept"),
    ])
    frames, skipped = _read(shard, "text")
    df = frames[0]
    assert df.columns == ["id", "text", "label"]
    assert df["id"].to_list() == ["shards/a.tar/a", "shards/a.tar/e"]
    assert df["text"].to_list() == ["héllo wörld", "kept"]
    assert df["label"].to_list() == ["3", None]
    assert dict(skipped) == {"webdataset_missing_content": 2, "empty_text": 1}
    assert skipped.examples["webdataset_missing_content"] == ["shards/a.tar/b", "shards/a.tar/d"]


def test_frames_are_batched_and_compressed_shards_stream(tmp_path) -> None:
    members = [m for i in range(7) for m in ((f"k{i:02d}.png", PNG), (f"k{i:02d}.cls", str(i % 2).encode()))]
    shard = _shard(tmp_path / "a.tar.gz", members, mode="w:gz")
    frames, _ = _read(shard, "image", batch_rows=3)
    assert [f.height for f in frames] == [3, 3, 1]
    assert [i for f in frames for i in f["id"].to_list()] == [f"shards/a.tar/k{i:02d}" for i in range(7)]


def test_a_truncated_shard_yields_what_precedes_the_damage_then_names_the_file(tmp_path) -> None:
    members = [(f"k{i:03d}.png", PNG * 40) for i in range(50)]
    whole = _shard(tmp_path / "whole.tar", members).read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[: len(whole) // 2 + 100])  # ends inside a member's data
    frames = iter_webdataset_frames(cut, "shards/cut.tar", "image", 10, SkipCounts())
    assert next(frames).height == 10  # streamed: the first batch comes before the damage is reached
    with pytest.raises(CorpusError, match="shards/cut.tar"):
        list(frames)


def test_not_a_tar_is_a_corpus_error_naming_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(CorpusError, match="shards/bad.tar: not a readable WebDataset tar shard"):
        _read(bad, "image", rel="shards/bad.tar")


@pytest.mark.parametrize(("members", "message"), [
    ([("a.png", PNG), ("b.png", PNG), ("a.cls", b"1")], "key 'a' appears twice"),
    ([("a.png", PNG), ("a.json", b"{not json")], "a.json is not valid JSON"),
    ([("a.png", PNG), ("a.json", json.dumps([1, 2]).encode())], "must hold a JSON object"),
    ([("a.txt", b"\xff\xfe bad")], "a.txt: invalid UTF-8"),
])
def test_bad_samples_raise_naming_shard_and_member(tmp_path, members, message) -> None:
    shard = _shard(tmp_path / "a.tar", members)
    content = "text" if members[0][0].endswith(".txt") else "image"
    with pytest.raises(CorpusError, match=message):
        _read(shard, content)


def test_written_by_the_webdataset_library_reads_back(tmp_path) -> None:
    wds = pytest.importorskip("webdataset")
    path = tmp_path / "lib.tar"
    with wds.TarWriter(str(path)) as sink:
        for i in range(5):
            sink.write({"__key__": f"sample{i:04d}", "png": PNG, "cls": i, "json": {"label": f"c{i}"}})
    frames, skipped = _read(path, "image", rel="lib.tar")
    assert frames[0]["id"].to_list() == [f"lib.tar/sample{i:04d}" for i in range(5)]
    assert frames[0]["label"].to_list() == [str(i) for i in range(5)]
    assert frames[0]["image"].to_list() == [PNG] * 5 and dict(skipped) == {}
