"""A user's own local model (transformers, timm, open_clip): tiny random models saved to a folder and loaded back
from it, no download. timm and open_clip import torchvision; where it cannot be imported their tests skip."""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from curation_assets.config import EmbedderConfig
from curation_assets.embedders import (
    EMBEDDERS,
    ModelNotAvailableError,
    OpenClipImageEmbedder,
    OpenClipTextEmbedder,
    TimmEmbedder,
    TransformersImageEmbedder,
    TransformersTextEmbedder,
    build_embedder,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

WORDS = "the a cat dog sat on mat ran fast slow red blue green house tree car".split()
TEXTS = ["the cat sat on the mat", "a dog ran fast", " ".join(WORDS * 2), "tree", "red car", "blue house"] + \
    [" ".join(WORDS[i : i + 3 + i % 5]) for i in range(14)]  # 20 texts in buckets of 16 and 48 tokens


def _png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


IMAGES = [_png((30 * i, 255 - 20 * i, (70 * i) % 256), (40 + 3 * i, 30 + i)) for i in range(6)]


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _library(name: str):
    """The library, or a skip: not installed, or it imports a torchvision that cannot load beside this torch."""
    try:
        return importlib.import_module(name)
    except Exception as e:
        pytest.skip(f"{name} cannot be imported here ({type(e).__name__}: {e}); it needs a torchvision that "
                    "imports beside this torch: see its extra in pyproject.toml")


def _tokenizer():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=64)


def _bert(seed: int):
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    return transformers.BertModel(config).eval()


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """(folder, the model in memory, its tokenizer)."""
    path = tmp_path_factory.mktemp("bert")
    model, tokenizer = _bert(0), _tokenizer()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, model, tokenizer


@pytest.fixture(scope="module")
def dinov2(tmp_path_factory):
    path = tmp_path_factory.mktemp("dinov2")
    torch.manual_seed(1)
    model = transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=32,
        patch_size=8)).eval()
    processor = transformers.BitImageProcessorPil(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, model, processor


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip")
    torch.manual_seed(2)
    layers = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    config = transformers.CLIPConfig(
        text_config={**layers, "vocab_size": 5 + len(WORDS), "max_position_embeddings": 64, "eos_token_id": 3,
                     "bos_token_id": 2, "pad_token_id": 0},
        vision_config={**layers, "image_size": 32, "patch_size": 8}, projection_dim=16)
    model = transformers.CLIPModel(config).eval()
    processor = transformers.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(path)
    processor.save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path, model, processor


def _assert_batch_independent(embedder, items, result) -> None:
    """Each row embedded alone gives the same bytes as in the full batch."""
    ok = result.ok_positions(len(items))
    for row, position in enumerate(ok):
        alone = embedder.embed([items[position]])
        assert np.array_equal(alone.vectors[0], result.vectors[row]), f"item {position} depends on its batch-mates"


# -- transformers: text --------------------------------------------------------------------------------------
def test_text_mean_pooling_is_the_models_and_batch_independent(bert) -> None:
    path, model, tokenizer = bert
    embedder = TransformersTextEmbedder(str(path), device="cpu")
    items = [*TEXTS, "", 7]
    result = embedder.embed(items)
    assert result.failed == [(len(TEXTS), "empty text"), (len(TEXTS) + 1, "not a string: int")]
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (len(TEXTS), 32) and embedder.dim == 32
    with torch.inference_mode():
        expected = [model(**tokenizer(t, return_tensors="pt")).last_hidden_state[0].mean(0).numpy() for t in TEXTS]
    np.testing.assert_allclose(result.vectors, _unit(expected), atol=1e-5)
    _assert_batch_independent(embedder, items, result)


def test_text_cls_pooling_and_max_length(bert) -> None:
    path, model, tokenizer = bert
    cls = TransformersTextEmbedder(str(path), pooling="cls", max_length=8, device="cpu").embed(TEXTS[:3])
    with torch.inference_mode():
        expected = [model(**tokenizer(t, truncation=True, max_length=8, return_tensors="pt")).last_hidden_state[0, 0]
                    .numpy() for t in TEXTS[:3]]
    np.testing.assert_allclose(cls.vectors, _unit(expected), atol=1e-5)


def test_identity_is_the_folders_content_without_loading_the_model(bert, tmp_path) -> None:
    path, _, _ = bert
    embedder = TransformersTextEmbedder(str(path), device="cpu")
    identity = embedder.identity
    assert embedder._model is None and "|text|pooling=default|" in identity and "|cpu|" in identity
    same = tmp_path / "copy"
    shutil.copytree(path, same)
    assert TransformersTextEmbedder(str(same), device="cpu").identity == identity  # content, not the path
    assert TransformersTextEmbedder(str(path), device="cuda:1").identity == identity.replace("|cpu|", "|cuda|")
    assert TransformersTextEmbedder(str(path), pooling="cls", device="cpu").identity != identity
    assert TransformersTextEmbedder(str(path), max_length=8, device="cpu").identity != identity
    _bert(seed=5).save_pretrained(same)  # other weights, same architecture
    assert TransformersTextEmbedder(str(same), device="cpu").identity != identity


# -- transformers: images ------------------------------------------------------------------------------------
def test_image_model_uses_its_own_processor_and_class_token(dinov2) -> None:
    path, model, processor = dinov2
    embedder = TransformersImageEmbedder(str(path), batch_size=4, device="cpu")
    items = [*IMAGES[:3], b"not an image", None, *IMAGES[3:]]
    result = embedder.embed(items)
    assert [p for p, _ in result.failed] == [3, 4] and "cannot decode image" in result.failed[0][1]
    assert result.vectors.shape == (6, 32) and embedder.dim == 32
    pixels = processor(images=[Image.open(io.BytesIO(b)).convert("RGB") for b in IMAGES], return_tensors="pt")
    with torch.inference_mode():
        expected = model(**pixels).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(result.vectors, _unit(expected), atol=1e-5)
    _assert_batch_independent(embedder, items, result)


def test_a_dual_encoder_embeds_images_and_texts_into_its_shared_space(clip) -> None:
    path, model, processor = clip
    images = TransformersImageEmbedder(str(path), batch_size=4, device="cpu").embed(IMAGES)
    texts = TransformersTextEmbedder(str(path), device="cpu").embed(TEXTS[:4])
    tokenizer = _tokenizer()
    pixels = processor(images=[Image.open(io.BytesIO(b)).convert("RGB") for b in IMAGES], return_tensors="pt")
    with torch.inference_mode():
        expected_images = model.get_image_features(**pixels).pooler_output.numpy()
        expected_texts = [model.get_text_features(**tokenizer(t, return_tensors="pt", return_token_type_ids=False))
                          .pooler_output[0].numpy() for t in TEXTS[:4]]
    assert images.vectors.shape == (6, 16) and texts.vectors.shape == (4, 16)  # the projection, 16-d
    np.testing.assert_allclose(images.vectors, _unit(expected_images), atol=1e-5)
    np.testing.assert_allclose(texts.vectors, _unit(expected_texts), atol=1e-5)


# -- configuration and errors --------------------------------------------------------------------------------
def test_configured_from_yaml_fields(bert) -> None:
    path, _, _ = bert
    embedder = build_embedder(EmbedderConfig(kind="transformers", model=str(path), pooling="cls", max_length=32),
                              device="cpu")
    assert isinstance(embedder, TransformersTextEmbedder)
    assert (embedder.pooling, embedder.max_length, embedder.batch_size) == ("cls", 32, 16)
    readers = {kind: (EMBEDDERS[kind].reader, EMBEDDERS[kind].dedup_threshold) for kind in
               ("transformers", "transformers_image", "timm", "open_clip", "open_clip_text")}
    assert readers == {"transformers": ("text", None), "transformers_image": ("image", None),
                       "timm": ("image", None), "open_clip": ("image", None), "open_clip_text": ("text", None)}
    with pytest.raises(ValueError, match="'sentence_transformer' does not use pooling"):
        EmbedderConfig(kind="sentence_transformer", pooling="cls")
    with pytest.raises(ValueError, match="'transformers_image' does not use max_length"):
        EmbedderConfig(kind="transformers_image", model="m", max_length=8)


@pytest.mark.parametrize("cls", [TransformersTextEmbedder, TransformersImageEmbedder, TimmEmbedder,
                                 OpenClipImageEmbedder, OpenClipTextEmbedder])
def test_a_model_that_is_not_here_is_model_not_available(cls, tmp_path) -> None:
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        _ = cls(str(tmp_path / "nope"), device="cpu").identity
    with pytest.raises(ModelNotAvailableError, match="not in the local Hugging Face cache"):
        _ = cls("nobody-here/no-such-model", device="cpu").identity


def test_a_hub_id_already_in_the_local_cache_is_used_offline(bert, tmp_path) -> None:
    path, _, _ = bert
    snapshot = tmp_path / "hub" / "models--someone--tiny-bert" / "snapshots" / ("0" * 40)
    shutil.copytree(path, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    code = ("from curation_assets.embedders import TransformersTextEmbedder as T; "
            "print(T('someone/tiny-bert', device='cpu').identity)")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == TransformersTextEmbedder(str(path), device="cpu").identity


def test_importing_the_embedders_loads_no_model_library() -> None:
    code = ("import sys, curation_assets.embedders; "
            "print([m for m in ('torch', 'transformers', 'timm', 'open_clip', 'huggingface_hub') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- timm ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def timm_vit(tmp_path_factory):
    timm = _library("timm")
    path = tmp_path_factory.mktemp("timm")
    torch.manual_seed(3)
    overlay = {"input_size": (3, 48, 48), "mean": (0.2, 0.4, 0.6), "std": (0.3, 0.2, 0.1), "crop_pct": 0.8}
    model = timm.create_model("test_vit", pretrained=False, img_size=48, pretrained_cfg_overlay=overlay).eval()
    timm.models.save_for_hf(model, path, safe_serialization=True)
    assert json.loads((path / "config.json").read_text())["pretrained_cfg"]["mean"] == [0.2, 0.4, 0.6]
    return path, model, timm


def test_timm_model_uses_its_pretrained_cfg_and_pre_logits(timm_vit) -> None:
    path, model, timm = timm_vit
    embedder = TimmEmbedder(str(path), batch_size=4, device="cpu")
    items = [*IMAGES[:2], b"junk", *IMAGES[2:]]
    result = embedder.embed(items)
    assert [p for p, _ in result.failed] == [2] and result.vectors.shape == (6, embedder.dim)
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model), is_training=False)
    batch = torch.stack([transform(Image.open(io.BytesIO(b)).convert("RGB")) for b in IMAGES])
    with torch.inference_mode():
        expected = model.forward_head(model.forward_features(batch), pre_logits=True).numpy()
    np.testing.assert_allclose(result.vectors, _unit(expected), atol=1e-5)
    _assert_batch_independent(embedder, items, result)
    assert embedder.identity.startswith("timm:") and "|cpu|timm==" in embedder.identity


# -- open_clip -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def open_clip_model(tmp_path_factory):
    open_clip = _library("open_clip")
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("open_clip")
    torch.manual_seed(4)
    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    model = open_clip.CLIP(**config).eval()
    save_file(model.state_dict(), path / "open_clip_model.safetensors")
    preprocess = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2], "interpolation": "bilinear"}
    (path / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": preprocess}))
    return path, model, open_clip


def test_open_clip_image_and_text_towers(open_clip_model) -> None:
    path, model, open_clip = open_clip_model
    image_embedder = OpenClipImageEmbedder(str(path), batch_size=4, device="cpu")
    text_embedder = OpenClipTextEmbedder(str(path), device="cpu")
    image_items, text_items = [*IMAGES, b"junk"], [*TEXTS[:5], "  "]
    images, texts = image_embedder.embed(image_items), text_embedder.embed(text_items)
    assert images.failed[0][0] == 6 and texts.failed == [(5, "empty text")]
    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}")
    tokens = open_clip.get_tokenizer(f"local-dir:{path}")(TEXTS[:5])
    with torch.inference_mode():
        expected_images = model.encode_image(torch.stack([preprocess(Image.open(io.BytesIO(b))) for b in IMAGES]))
        expected_texts = model.encode_text(tokens)
    np.testing.assert_allclose(images.vectors, _unit(expected_images), atol=1e-5)
    np.testing.assert_allclose(texts.vectors, _unit(expected_texts), atol=1e-5)
    _assert_batch_independent(image_embedder, image_items, images)
    _assert_batch_independent(text_embedder, text_items, texts)
    assert image_embedder.identity != text_embedder.identity and image_embedder.dim == text_embedder.dim == 16


def test_open_clip_folder_without_weights_is_refused(open_clip_model, tmp_path) -> None:
    path, _, _ = open_clip_model
    shutil.copy(path / "open_clip_config.json", tmp_path / "open_clip_config.json")
    with pytest.raises(ModelNotAvailableError, match="holds no weights"):
        OpenClipImageEmbedder(str(tmp_path), device="cpu").embed(IMAGES[:1])
