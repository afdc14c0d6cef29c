import numpy as np
import pytest

from curation_assets.config import DEFAULT_ALPHA, DEFAULT_LEVELS, ConfigError, load_config
from curation_assets.core import LevelSpec
from curation_assets.store import Layout, confined, load_npy, save_npy


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_repo_config_is_valid_and_sizes_levels_relative_to_the_pool():
    cfg = load_config()
    assert set(cfg.modalities) == {"simulated", "text", "image", "satellite"}
    text_levels = cfg.modality("text").levels
    assert all(isinstance(level, LevelSpec) and level.per_cluster for level in text_levels)
    assert [level.clusters_for(12000) for level in text_levels] == [600]
    assert [level.clusters_for(1000) for level in text_levels] == [50]


@pytest.mark.parametrize("text, message", [
    ("modalities:\n  t:\n    embedder: {kind: points}\n    levels: [{n_clusters: -3}]\n", "n_clusters"),
    ("modalities:\n  t:\n    embedder: {kind: points}\n    levels: [{n_clusters: 3, per_cluster: 20}]\n",
     "exactly one of n_clusters"),
    ("modalities:\n  t:\n    embedder: {kind: points}\n    levels: [{per_cluster: 20, bogus: 1}]\n", "bogus"),
    ("modalities:\n  t:\n    embedder: {kind: points}\n    levels: []\n", "levels"),
    ("modalities: {}\n", "modalities"),
    ("modalities:\n  t:\n    embedder: {kind: magic}\n", "unknown embedder kind 'magic'"),
    ("modalities:\n  t:\n    embedder: {kind: points}\n    source: {reader: pdf}\n", "unknown reader 'pdf'"),
    ("modalities:\n  t:\n    embedder: {kind: points}\n    colour: red\n", "colour"),
    ("modalities: [\n", "not valid YAML"),
])
def test_invalid_config_names_the_field(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_modality(tmp_path):
    cfg = load_config(write(tmp_path, "modalities:\n  t:\n    embedder: {kind: points}\n"))
    with pytest.raises(ConfigError, match="unknown modality 'video'"):
        cfg.modality("video")


def test_default_levels_follow_the_pool_and_use_the_papers_rule_for_r(tmp_path):
    cfg = load_config(write(tmp_path, "modalities:\n  t:\n    embedder: {kind: points}\n"))
    assert cfg.modality("t").levels == DEFAULT_LEVELS
    assert cfg.modality("t").sampling.alpha == DEFAULT_ALPHA
    first = DEFAULT_LEVELS[0].resolved(12000)
    assert (first.n_clusters, first.sample_size) == (600, 10)  # r = half of the mean cluster size (20)
    assert LevelSpec(10, sample_size=3).resolved(1000).sample_size == 3


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


def test_the_readmes_example_is_the_bundled_configuration(tmp_path):
    """The YAML block of the README's "Configuration" section holds the bundled text modality, key for key."""
    import re

    import yaml

    from curation_assets.config import REPO_ROOT

    section = (REPO_ROOT / "README.md").read_text().split("## Configuration", 1)[1]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    bundled = yaml.safe_load((REPO_ROOT / "curation.yaml").read_text())
    assert example["modalities"]["text"] == bundled["modalities"]["text"]
    assert load_config(write(tmp_path, yaml.safe_dump(example))).modality("text") == load_config().modality("text")
