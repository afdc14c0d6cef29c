"""Running the project the way a user does: ``dg launch`` in a fresh process, on a data root and a Dagster home
of the test's own. No fixed wall-clock limit decides a test's fate: the jobs are sized small, and the limit only
stops a run that hangs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HANG_LIMIT_S = 3600  # a run that takes longer is stuck, not slow


def cli_env(config: Path, root: Path, home: Path) -> dict:
    """The environment of a user's shell: the project's venv active, its own data root, config and instance."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
                                       "python_logs:\n  python_log_level: INFO\n")
    return {**os.environ, "CURATION_CONFIG": str(config), "CURATION_DATA_DIR": str(root), "DAGSTER_HOME": str(home),
            "VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}


def launch_args(partition: str, assets: str | None = None) -> list[str]:
    """``dg launch --job curate --partition <p>`` (the whole graph), or ``--assets <selection>``."""
    target = ["--assets", assets] if assets else ["--job", "curate"]
    return [str(BIN / "dg"), "launch", *target, "--partition", partition]


def launch(env: dict, partition: str, assets: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(launch_args(partition, assets), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=HANG_LIMIT_S)


def launch_ok(env: dict, partition: str, assets: str | None = None) -> subprocess.CompletedProcess:
    out = launch(env, partition, assets)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def popen(env: dict, partition: str, **kwargs) -> subprocess.Popen:
    """A run in the background (its event log on stderr), in its own process group."""
    return subprocess.Popen(launch_args(partition), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)
