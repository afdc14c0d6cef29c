import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _isolated_ray_settings() -> None:
    """Ray clusters of the tests listen on 127.0.0.1 only, send no usage stats and use token auth with a
    token of this test session (not the user's ~/.ray)."""
    import secrets
    import tempfile

    token = Path(tempfile.mkdtemp(prefix="ray-token-")) / "auth_token"
    token.write_text(secrets.token_hex(32))
    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                       "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})


_isolated_ray_settings()

SMALL_CONFIG = """
modalities:
  simulated:
    source: {kind: simulated}
    embedder: {kind: points}
    dedup: {enabled: false}
    levels:
      - {n_clusters: 300, resampling_steps: 3, sample_size: 2}
      - {n_clusters: 100, resampling_steps: 3, sample_size: 2}
      - {n_clusters: 30, resampling_steps: 3, sample_size: 2}
    sampling: {target_size: 300, seed: 0}
    benchmark: {seeds: [0], paper_2d_table: false}
  text:
    source: {kind: auto, demo_items: 300}
    embedder: {kind: sentence_transformer, batch_size: 64}
    metric: cosine
    levels:
      - {per_cluster: 10, resampling_steps: 3}
      - {per_cluster: 4, resampling_steps: 3}
    sampling: {fraction: 0.3, seed: 0}
    benchmark: {seeds: [0], test_per_class: 2}
  image:
    source: {kind: auto, demo_items: 300}
    embedder: {kind: efficientnet_lite0, batch_size: 64, image_size: 64}
    metric: cosine
    levels:
      - {per_cluster: 10, resampling_steps: 3}
      - {per_cluster: 4, resampling_steps: 3}
    sampling: {fraction: 0.3, seed: 0}
    benchmark: {seeds: [0], test_per_class: 5}
  satellite:
    source: {kind: auto, reader: satellite, demo_items: 200, tile_px: 30}
    embedder: {kind: efficientnet_lite0, batch_size: 64, image_size: 64}
    metric: cosine
    levels:
      - {n_clusters: 20, resampling_steps: 3}
    sampling: {target_size: 40, seed: 0}
    benchmark: {seeds: [0], test_per_class: 5}
"""


@pytest.fixture
def small_config(tmp_path: Path, monkeypatch) -> Path:
    """A small configuration and an empty data root for this test (env CURATION_CONFIG / CURATION_DATA_DIR)."""
    cfg = tmp_path / "curation.yaml"
    cfg.write_text(SMALL_CONFIG)
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("CURATION_CONFIG", str(cfg))
    monkeypatch.setenv("CURATION_DATA_DIR", str(root))
    return cfg


@pytest.fixture
def data_root(small_config: Path) -> Path:
    return small_config.parent / "data"
