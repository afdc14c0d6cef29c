"""The project through its command lines: ``dg check defs`` and ``dg launch`` (``dagster asset materialize -m
curation_assets`` is exercised by the published-subset, crash and concurrency tests)."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env_for(small_config, data_root, tmp_path) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    return {**os.environ, "CURATION_CONFIG": str(small_config), "CURATION_DATA_DIR": str(data_root),
            "DAGSTER_HOME": str(home), "VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}:{os.environ['PATH']}"}


def test_dg_check_defs(small_config, data_root, tmp_path):
    out = subprocess.run([str(BIN / "dg"), "check", "defs"], cwd=REPO, env=env_for(small_config, data_root, tmp_path),
                         capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "All definitions loaded successfully" in out.stdout + out.stderr


@pytest.mark.slow
def test_dg_launch_materializes_the_simulated_partition(small_config, data_root, tmp_path):
    env = env_for(small_config, data_root, tmp_path)
    out = subprocess.run([str(BIN / "dg"), "launch", "--assets", "*", "--partition", "simulated"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(pl.read_parquet(data_root / "curated/simulated/subset.parquet")) == 300
    assert (data_root / "datasets/simulated/README.md").is_file()
    assert any((tmp_path / "dagster_home").rglob("*.db"))  # run history persists in the project-local instance
