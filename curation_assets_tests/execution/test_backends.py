import os
import sys

import numpy as np
import polars as pl
import pytest

from curation_assets.config import ExecutionConfig
from curation_assets.core import assign
from curation_assets.embedders import EmbedResult
from curation_assets.execution import (
    InProcessBackend,
    _cached_backend,
    make_backend,
    read_items,
    row_tasks,
    task_ranges,
)


def test_task_ranges_cover_every_row_once():
    assert task_ranges(0, 10) == []
    assert task_ranges(10, 10) == [(0, 10)]
    assert task_ranges(25, 10) == [(0, 10), (10, 20), (20, 25)]


def test_read_items_reads_exactly_the_rows(tmp_path):
    path = tmp_path / "corpus.parquet"
    pl.DataFrame({"text": [f"row {i}" for i in range(1000)]}).write_parquet(path, row_group_size=128)
    assert read_items(path, "text", np.arange(250, 260)) == [f"row {i}" for i in range(250, 260)]
    assert read_items(path, "text", np.array([3, 127, 128, 999])) == ["row 3", "row 127", "row 128", "row 999"]
    assert [len(t) for t in row_tasks(np.arange(25), 10)] == [10, 10, 5]


class RecordingEmbedder:
    name, dim = "recording", 2

    def __init__(self):
        self.batches = []

    def embed(self, items, progress=None):
        self.batches.append(list(items))
        failed = [(i, "empty") for i, t in enumerate(items) if not t]
        return EmbedResult(np.ones((len(items) - len(failed), 2), dtype=np.float32), failed)


def test_in_process_embedding_runs_the_tasks_in_row_order(tmp_path):
    path = tmp_path / "corpus.parquet"
    pl.DataFrame({"text": [f"t{i}" if i != 7 else "" for i in range(23)]}).write_parquet(path)
    model = RecordingEmbedder()
    backend = InProcessBackend(embed_task_rows=10, assign_task_rows=100)
    out = list(backend.embed(lambda: model, path, "text", np.arange(23)))
    assert [(rows[0], rows[-1]) for rows, _ in out] == [(0, 9), (10, 19), (20, 22)]
    assert model.batches[2] == ["t20", "t21", "t22"]
    assert out[0][1].failed == [(7, "empty")]
    assert backend.run_summary()["tasks"] == 3
    only = list(backend.embed(lambda: model, path, "text", np.array([2, 21])))  # only the rows the cache lacks
    assert model.batches[-1] == ["t2", "t21"] and len(only) == 1


def test_nothing_to_embed_builds_no_model(tmp_path):
    def factory():
        raise AssertionError("the model was built")

    backend = InProcessBackend(embed_task_rows=10, assign_task_rows=100)
    assert list(backend.embed(factory, tmp_path / "unused.parquet", "text", np.arange(0))) == []


def test_in_process_assignment_is_the_core_assignment_in_tasks():
    rng = np.random.default_rng(0)
    X, C = rng.standard_normal((1000, 16)).astype(np.float32), rng.standard_normal((7, 16)).astype(np.float32)
    backend = InProcessBackend(embed_task_rows=10, assign_task_rows=128)
    labels, dists = backend.assign(X, C, "l2")
    ref_labels, ref_dists = assign(X, C, "l2", chunk_rows=128)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(dists, ref_dists)
    assert backend.run_summary() == {"execution": "local", "tasks": 8, "workers": [f"local:{os.getpid()}"]}


def test_in_process_splits_run_in_groups_of_clusters_with_the_cores_result():
    from curation_assets.core.splits import SplitSettings, split_clusters

    X = np.random.default_rng(1).standard_normal((2000, 16)).astype(np.float32)
    clusters = [(np.arange(start, start + 250), start) for start in range(0, 2000, 250)]
    backend = InProcessBackend(embed_task_rows=10, assign_task_rows=500)
    got = backend.split(X, clusters, SplitSettings(n_splits=3))
    want = split_clusters(X, clusters, SplitSettings(n_splits=3))
    for a, b in zip(got, want, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert backend.run_summary()["tasks"] == 4  # 8 clusters of 250 rows, 500 rows a task


def test_make_backend_is_one_per_settings_and_ray_missing_is_explained(monkeypatch):
    cfg = ExecutionConfig(embed_task_rows=11)
    assert make_backend(cfg) is make_backend(ExecutionConfig(embed_task_rows=11))
    assert make_backend(cfg) is not make_backend(ExecutionConfig(embed_task_rows=12))
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "curation_assets.execution.ray_backend", None)
    _cached_backend.cache_clear()
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[ray\]'"):
        make_backend(ExecutionConfig(backend="ray"))
    _cached_backend.cache_clear()


def test_the_execution_device_reaches_the_in_process_assignment(monkeypatch):
    from curation_assets.graph.resources import ExecutionResource

    torch = pytest.importorskip("torch")
    assert ExecutionConfig().device == "auto" and make_backend(ExecutionConfig(device="cpu")).device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ExecutionResource().compute_device(ExecutionConfig()) == "cpu"  # auto without a GPU: the faiss path
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ExecutionResource().compute_device(ExecutionConfig()) == "cuda"
    assert ExecutionResource(device="cpu").compute_device(ExecutionConfig(device="cuda")) == "cpu"
    with pytest.raises(ValueError, match="device"):
        ExecutionResource(device="gpu").get(ExecutionConfig())
    rng = np.random.default_rng(1)
    X, C = rng.standard_normal((900, 16)).astype(np.float32), rng.standard_normal((5, 16)).astype(np.float32)
    labels, dists = InProcessBackend(10, 128, device="torch-cpu").assign(X, C, "l2")  # the kernels a GPU runs
    ref_labels, ref_dists = assign(X, C, "l2", device="torch-cpu")
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(dists, ref_dists)
