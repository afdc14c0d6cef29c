import numpy as np
import pytest

from curation_assets.config import ConfigError, LevelConfig, auto_levels, load_config, resolved_sample_size
from curation_assets.storage import Layout, confined, load_npy, save_npy


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_repo_config_is_valid():
    cfg = load_config()
    assert set(cfg.modalities) == {"simulated", "text", "image", "satellite"}


@pytest.mark.parametrize("text, message", [
    ("modalities:\n  t:\n    embedder: {kind: none}\n    levels: [{n_clusters: -3}]\n", "n_clusters"),
    ("modalities:\n  t:\n    embedder: {kind: none}\n    levels: []\n", "levels"),
    ("modalities: {}\n", "modalities"),
    ("modalities:\n  t:\n    embedder: {kind: magic}\n", "embedder.kind"),
    ("modalities:\n  t:\n    embedder: {kind: none}\n    colour: red\n", "colour"),
    ("modalities: [\n", "not valid YAML"),
])
def test_invalid_config_names_the_field(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_modality(tmp_path):
    cfg = load_config(write(tmp_path, "modalities:\n  t:\n    embedder: {kind: none}\n"))
    with pytest.raises(ConfigError, match="unknown modality 'video'"):
        cfg.modality("video")


def test_auto_levels_and_paper_rule_for_sample_size():
    levels = auto_levels(12000)
    assert [lv.n_clusters for lv in levels] == [600, 150, 37]
    assert resolved_sample_size(levels[0], 12000) == 10  # half of the mean cluster size (20)
    assert resolved_sample_size(LevelConfig(n_clusters=10, sample_size=3), 1000) == 3
    assert auto_levels(5)[0].n_clusters >= 1


def test_paths_are_confined_to_the_data_root(tmp_path):
    assert confined(tmp_path, "raw/text") == (tmp_path / "raw/text").resolve()
    with pytest.raises(ValueError, match="outside the data root"):
        confined(tmp_path, "../../etc")
    with pytest.raises(ValueError, match="outside the data root"):
        Layout("text", tmp_path).raw_dir("/etc")


def test_npy_round_trip_and_pickle_refused(tmp_path):
    save_npy(tmp_path / "a.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    assert load_npy(tmp_path / "a.npy").shape == (2, 3)
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        load_npy(tmp_path / "evil.npy", mmap=False)
    assert not list(tmp_path.glob(".*.tmp"))
