"""Scale-out: a text and an image partition curated through a local 2-CPU Ray cluster (loopback only)
give byte-identical embeddings, levels and subset to the in-process run."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import ray
from dagster import AssetSelection

from curation_assets.graph.resources import ExecutionResource
from curation_assets.store import Layout, ShardedArray

from ._helpers import curate

UP_TO_SUBSET = AssetSelection.all() - AssetSelection.assets("benchmark_scores")
TASKS = ("execution: {embed_task_rows: 100, assign_task_rows: 64, lloyd_task_rows: 100, "  # Lloyd as tasks,
         "seeding_task_rows: 100}\n")  # and seeding's blocks on an actor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`ray start` exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head did not listen on port {port} within {timeout} s")


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head` with 2 CPUs on 127.0.0.1, in its own process group, stopped by PID at the end."""
    port, client_port = free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--num-cpus", "2",
           "--port", str(port), "--ray-client-server-port", str(client_port), "--include-dashboard", "false",
           "--disable-usage-stats", "--temp-dir", temp_dir]
    log = open(Path(temp_dir) / "head.log", "w")  # noqa: SIM115 - closed at teardown
    # conftest's settings (inherited): loopback only, the test session's auth token
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, proc)
        wait_for_port(client_port, proc)
        yield {"gcs": f"127.0.0.1:{port}", "ray client": f"ray://127.0.0.1:{client_port}"}
    finally:
        ray.shutdown()
        stop_process_group(proc)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the head's process group (ray start, GCS, raylet, workers), SIGKILL what is left."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()


def outputs(root: Path, modality: str) -> dict:
    layout = Layout(modality, root)
    out = {"subset": pl.read_parquet(layout.subset_dir / "subset.parquet"),
           "embeddings": np.asarray(ShardedArray.open(layout.embeddings_dir))}
    for t in (1, 2):
        out[f"level_{t}"] = np.load(layout.level_dir(t) / "assignment.npy")
        out[f"centroids_{t}"] = np.load(layout.level_dir(t) / "centroids.npy")
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("modality", "connection"), [("text", "gcs"), ("image", "ray client")])
def test_curation_through_ray_is_identical_to_in_process(small_config, tmp_path, monkeypatch, ray_head, modality,
                                                         connection):
    small_config.write_text(small_config.read_text() + TASKS)
    runs = {}
    for backend in ("local", "ray"):
        root = tmp_path / backend
        root.mkdir()
        monkeypatch.setenv("CURATION_DATA_DIR", str(root))
        address = ray_head[connection] if backend == "ray" else None
        try:
            result = curate(small_config, modality, selection=UP_TO_SUBSET,
                            execution=ExecutionResource(backend=backend, ray_address=address))
        finally:
            ray.shutdown()  # the next test may connect another way
        runs[backend] = (outputs(root, modality), result)

    (local, _), (distributed, result) = runs["local"], runs["ray"]
    assert len(local["subset"]) > 50
    assert local["subset"].equals(distributed["subset"])
    for key in local:
        if key != "subset":
            np.testing.assert_array_equal(local[key], distributed[key], err_msg=key)

    emb = result.asset_materializations_for_node("embeddings")[0].metadata
    level_1 = result.asset_materializations_for_node("clustering_level_1")[0].metadata
    for meta in (emb, level_1):
        assert meta["execution"].value == "ray" and meta["ray_cpus"].value == 2
        assert meta["ray_address"].value == ray_head[connection]
        workers = meta["workers"].value
        assert workers and not any(w.endswith(f":{os.getpid()}") for w in workers)
    assert emb["tasks"].value == 3 and len(emb["workers"].value) == 2  # 300 rows / 100, two model actors
    assert level_1["tasks"].value > 5
