from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from curation_assets.readers import CorpusError, content_id, iter_text_corpus


def _collect(it) -> pl.DataFrame:
    frames = list(it)
    return pl.concat(frames) if frames else pl.DataFrame()


def _write_mixed(d: Path) -> None:
    (d / "sub").mkdir(parents=True)
    pl.DataFrame({"id": [1, 2, 3], "text": ["alpha", "  ", "beta"], "label": ["x", None, "y"]}).write_parquet(
        d / "a.parquet"
    )
    (d / "b.jsonl").write_text(
        '{"text": "gamma", "label": "z"}\n\n{"text": ""}\n{"text": null}\n{"text": "gamma"}\n'
    )
    (d / "sub" / "c.csv").write_text('text,label\n"multi\nline",q\n,\ndelta,\n')
    (d / "d.txt").write_text("one\n\n   \ntwo\r\n")
    (d / "ignored.md").write_text("not read")


def test_mixed_formats_schema_order_and_skips(tmp_path: Path) -> None:
    _write_mixed(tmp_path)
    it = iter_text_corpus(tmp_path, batch_rows=2)
    assert it.files == ["a.parquet", "b.jsonl", "d.txt", "sub/c.csv"]
    frames = list(it)
    assert all(f.height <= 2 for f in frames)
    df = pl.concat(frames)
    assert df.schema == pl.Schema({"id": pl.String, "text": pl.String, "label": pl.String})
    assert df["text"].to_list() == ["alpha", "beta", "gamma", "one", "two", "multi\nline", "delta"]
    assert df["id"].to_list()[:2] == ["1", "3"]
    assert df["id"][2] == "sha1:" + hashlib.sha1(b"gamma").hexdigest()[:16] == content_id("gamma")
    assert df["label"].to_list() == ["x", "y", "z", None, None, "q", None]
    # parquet "  ", jsonl "" and null, csv empty field; the repeated "gamma" is an exact duplicate
    assert dict(it.skipped) == {"empty_text": 4, "duplicate_text": 1}
    assert it.rows == 7
    assert "b.jsonl line 3" in it.skipped.examples["empty_text"]


def test_batches_are_streamed(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("".join(f"doc {i}\n" for i in range(1000)))
    sizes = [f.height for f in iter_text_corpus(tmp_path, batch_rows=300)]
    assert sizes == [300, 300, 300, 100]


def test_ids_are_stable(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello world\nsecond\n")
    a = _collect(iter_text_corpus(tmp_path))["id"].to_list()
    b = _collect(iter_text_corpus(tmp_path))["id"].to_list()
    assert a == b and a[0] == content_id("hello world")


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_missing_text_column_names_file_and_columns(tmp_path: Path, fmt: str) -> None:
    df = pl.DataFrame({"id": ["a"], "body": ["x"]})
    path = tmp_path / f"data.{fmt}"
    getattr(df, {"parquet": "write_parquet", "jsonl": "write_ndjson", "csv": "write_csv"}[fmt])(path)
    with pytest.raises(CorpusError, match=rf"data\.{fmt}.*'text'.*body"):
        list(iter_text_corpus(tmp_path))


def test_no_supported_files(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(CorpusError, match="no readable file under"):
        iter_text_corpus(tmp_path)


@pytest.mark.parametrize("name", ["bad.txt", "bad.csv", "bad.jsonl"])
def test_non_utf8_names_file_offset_and_line(tmp_path: Path, name: str) -> None:
    good = {"bad.txt": b"ok line\n", "bad.csv": b"text\nok line\n", "bad.jsonl": b'{"text": "ok line"}\n'}[
        name
    ]
    bad = {"bad.txt": b"caf\xe9\n", "bad.csv": b"caf\xe9\n", "bad.jsonl": b'{"text": "caf\xe9"}\n'}[name]
    (tmp_path / name).write_bytes(good + bad)
    offset = len(good) + bad.index(b"\xe9")
    with pytest.raises(
        CorpusError,
        match=rf"{name}.*byte offset {offset} \(line 3\)"
        if name == "bad.csv"
        else rf"{name}.*byte offset {offset} \(line 2\)",
    ):
        list(iter_text_corpus(tmp_path))


def test_duplicate_explicit_ids_name_both_files(tmp_path: Path) -> None:
    pl.DataFrame({"id": ["a", "b"], "text": ["x", "y"]}).write_parquet(tmp_path / "one.parquet")
    (tmp_path / "two.jsonl").write_text('{"id": "c", "text": "z"}\n{"id": "b", "text": "w"}\n')
    with pytest.raises(CorpusError, match=r"duplicate id .b.*one\.parquet.*two\.jsonl line 2"):
        list(iter_text_corpus(tmp_path))


def test_duplicate_ids_within_a_file(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,text\n7,x\n7,y\n")
    with pytest.raises(CorpusError, match=r"duplicate id '7'.*a\.csv.*a\.csv row 1"):
        list(iter_text_corpus(tmp_path))


def test_empty_explicit_id_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": "1", "text": "x"}\n{"id": null, "text": "y"}\n')
    with pytest.raises(CorpusError, match=r"a\.jsonl line 2 has an empty id"):
        list(iter_text_corpus(tmp_path))


def test_bad_json_line(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n{"text": \n')
    with pytest.raises(CorpusError, match=r"a\.jsonl: line 2 is not valid JSON"):
        list(iter_text_corpus(tmp_path))


def test_numeric_columns_become_strings(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,text,label\n10,42,3\n11,hello,4\n")
    df = _collect(iter_text_corpus(tmp_path))
    assert df.rows() == [("10", "42", "3"), ("11", "hello", "4")]


def test_utf8_bom_and_unicode(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes("\ufeffnaïve café ☕\n".encode())
    (tmp_path / "b.csv").write_bytes("\ufefftext\nżółw\n".encode())
    df = _collect(iter_text_corpus(tmp_path))
    assert df["text"].to_list() == ["naïve café ☕", "żółw"]
