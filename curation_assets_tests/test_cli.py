import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dagster_cli_materializes_the_simulated_partition(small_config, data_root, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    env = {**os.environ, "CURATION_CONFIG": str(small_config), "CURATION_DATA_DIR": str(data_root),
           "DAGSTER_HOME": str(home)}
    dagster = Path(sys.executable).parent / "dagster"
    out = subprocess.run([str(dagster), "asset", "materialize", "-m", "curation_assets", "--select", "*",
                          "--partition", "simulated"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (data_root / "curated/simulated/subset.parquet").is_file()
    # run history persists in the project-local instance
    assert any(home.rglob("*.db"))
