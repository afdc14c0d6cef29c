"""The torch kernels on the CPU ("torch-cpu"): the code a GPU runs, checked against the faiss path without a GPU."""

import importlib

import numpy as np
import pytest

from curation_assets.core import (
    LevelSpec,
    assign,
    fit_level,
    hierarchical_kmeans,
    hierarchical_sampling,
    kmeans,
    label_balance,
)
from curation_assets.core.devices import kernels_for, resolve_device
from curation_assets.core.lloyd import run_lloyd
from curation_assets.core.seeding import greedy_seeds
from curation_assets.core.synthetic import zipf_concepts
from curation_assets.core.workers import shared_workers

torch = pytest.importorskip("torch")
backend_torch = importlib.import_module("curation_assets.core.backend_torch")


def separated_blobs(n=6000, k=12, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = 10 * rng.standard_normal((k, d))
    truth = rng.integers(0, k, n)
    return (centres[truth] + rng.standard_normal((n, d))).astype(np.float32), truth


def near_tie(X, C, a, b, tol=1e-6):
    """Rows whose squared distances to centroids a and b (float64) agree within ``tol`` of ||x||² + ||c||², the
    scale of the float32 rounding of ||x||² + ||c||² - 2 x·c."""
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    da, db = ((X64 - C64[a]) ** 2).sum(axis=1), ((X64 - C64[b]) ** 2).sum(axis=1)
    scale = (X64**2).sum(axis=1) + np.maximum((C64[a] ** 2).sum(axis=1), (C64[b] ** 2).sum(axis=1))
    return np.abs(da - db) <= tol * scale


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_assignment_matches_faiss_except_near_ties(metric, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30_000, 64)).astype(np.float32)
    C = rng.standard_normal((500, 64)).astype(np.float32)
    path = tmp_path / "X.npy"
    np.save(path, X)
    X = np.load(path, mmap_mode="r")
    rows = rng.permutation(30_000)[:7000]
    for subset in (None, rows):
        faiss_labels, faiss_sq = assign(X, C, metric, rows=subset)
        torch_labels, torch_sq = assign(X, C, metric, rows=subset, device="torch-cpu", chunk_rows=4096)
        differ = np.flatnonzero(faiss_labels != torch_labels)
        units = X if metric == "l2" else X / np.linalg.norm(X, axis=1, keepdims=True)
        units = units if subset is None else units[subset]
        centres = C if metric == "l2" else C / np.linalg.norm(C, axis=1, keepdims=True)
        assert near_tie(units[differ], centres, faiss_labels[differ], torch_labels[differ]).all()
        assert len(differ) <= 3
        np.testing.assert_allclose(torch_sq, faiss_sq, rtol=1e-5, atol=1e-5)


def test_seeding_and_lloyd_match_faiss_on_separated_data():
    X, truth = separated_blobs()
    for metric in ("l2", "cosine"):
        faiss_run = kmeans(X, 12, seed=3, metric=metric)
        torch_run = kmeans(X, 12, seed=3, metric=metric, device="torch-cpu")
        np.testing.assert_array_equal(torch_run.labels, faiss_run.labels)
        np.testing.assert_allclose(torch_run.centroids, faiss_run.centroids, rtol=1e-5, atol=1e-5)
        assert torch_run.n_iter == faiss_run.n_iter
        assert len(np.unique(torch_run.labels[truth == 0])) == 1


def test_seeds_are_the_faiss_paths_draws():
    X, _ = separated_blobs(n=4000, k=40, d=24, seed=1)
    for seed in range(3):
        seeds = {}
        for device in ("cpu", "torch-cpu"):
            kernels = kernels_for(device, X.shape[1])
            train, seeding_set = kernels.training_rows(X, None, None, "l2")
            seeds[device], _ = greedy_seeds(seeding_set, 60, None, np.random.default_rng(seed),
                                                   kernels.seeding(seeding_set))
        np.testing.assert_array_equal(seeds["torch-cpu"], seeds["cpu"])


def test_lloyd_converges_to_a_lloyd_fixed_point_deterministically():
    # Near ties (a point within float32 rounding of two centroids) are common in a long Lloyd run, and the two
    # paths round the GEMM distances differently, so the runs are compared by what they reach, not label by label.
    X, _ = separated_blobs(n=16_000, k=20, d=16, seed=2)
    rng = np.random.default_rng(2)
    init = X[rng.choice(len(X), 300, replace=False)]
    kernels = backend_torch.torch_kernels("torch-cpu")
    ours = [kernels.lloyd(torch.from_numpy(X), torch.from_numpy(init), 100, np.random.default_rng(0), False)
            for _ in range(2)]
    np.testing.assert_array_equal(ours[0][0], ours[1][0])  # float64 sums without atomic additions
    C, iterations, pairs = ours[0]
    assert iterations < 100 and pairs == iterations * len(X) * len(C)  # stopped once no point moved
    X64 = X.astype(np.float64)

    def sq_dists(centroids):  # float64
        C64 = centroids.astype(np.float64)
        return (X64**2).sum(axis=1)[:, None] - 2 * X64 @ C64.T + (C64**2).sum(axis=1)[None, :]

    labels = sq_dists(C).argmin(axis=1)
    means = np.stack([X64[labels == j].mean(axis=0) for j in range(len(C))])
    np.testing.assert_allclose(C, means, rtol=1e-4, atol=1e-4)  # every centroid the mean of its points
    faiss_C, _, _ = run_lloyd(X, init.copy(), 100, np.random.default_rng(0), False,
                                         shared_workers())
    assert abs(sq_dists(C).min(axis=1).sum() / sq_dists(faiss_C).min(axis=1).sum() - 1) < 0.01


def test_centroid_sums_add_and_remove_rows_exactly():
    rng = np.random.default_rng(3)
    rows = torch.from_numpy(rng.standard_normal((200_000, 8)))
    labels = torch.from_numpy(rng.integers(0, 50, 200_000))
    kernels = backend_torch.torch_kernels("torch-cpu")
    sums = torch.zeros((50, 8), dtype=torch.float64)
    kernels._add_rows(sums, labels, rows.float(), 1.0)
    expected = np.zeros((50, 8))
    np.add.at(expected, labels.numpy(), rows.float().double().numpy())
    np.testing.assert_allclose(sums.numpy(), expected, rtol=1e-12, atol=1e-9)
    kernels._add_rows(sums, labels, rows.float(), -1.0)
    np.testing.assert_allclose(sums.numpy(), 0.0, atol=1e-9)


def test_long_tailed_balance_is_the_faiss_paths():
    # bench/bench_longtail.py --device torch-cpu measures the same over seeds 0-2 on the full benchmark
    X, concept = zipf_concepts(n_concepts=60, n_points=12_000, dim=32, seed=0)
    levels = [LevelSpec(150, resampling_steps=5, sample_size=40), LevelSpec(30, resampling_steps=5, sample_size=2)]
    kl = {}
    for device in ("cpu", "torch-cpu"):
        h = hierarchical_kmeans(X, levels, seed=0, device=device)
        subset = hierarchical_sampling(h, 1200, strategy="random", seed=0)
        assert len(subset) == 1200 and [lv.n_clusters for lv in h.levels][1] == 30
        kl[device] = label_balance(concept[subset], concept)["kl_to_uniform"]
    assert abs(kl["torch-cpu"] - kl["cpu"]) < 0.05, kl


def test_a_level_held_in_device_memory_is_the_streamed_level(monkeypatch):
    X, _ = separated_blobs(n=5000, k=20, d=16, seed=4)
    spec = LevelSpec(40, resampling_steps=3, sample_size=20, n_splits=2)
    streamed = fit_level(X, spec, seed=1, device="torch-cpu")
    kernels = backend_torch.torch_kernels("torch-cpu")
    monkeypatch.setattr(backend_torch.TorchKernels, "resident", lambda self, X: self._gather(X, None))  # as on a GPU
    held = fit_level(X, spec, seed=1, device="torch-cpu")
    assert torch.is_tensor(kernels.resident(X))
    np.testing.assert_array_equal(held.centroids, streamed.centroids)
    np.testing.assert_array_equal(held.assignment, streamed.assignment)
    np.testing.assert_array_equal(held.distances, streamed.distances)


def test_low_dimension_takes_the_k_d_tree_path_on_every_device():
    X = np.random.default_rng(5).standard_normal((3000, 2)).astype(np.float32)
    faiss_run, torch_run = kmeans(X, 30, seed=0), kmeans(X, 30, seed=0, device="torch-cpu")
    np.testing.assert_array_equal(torch_run.centroids, faiss_run.centroids)
    np.testing.assert_array_equal(torch_run.labels, faiss_run.labels)


def test_device_names(monkeypatch):
    monkeypatch.setattr("curation_assets.core.devices._nvidia_gpu_visible", lambda: True)
    assert resolve_device("torch-cpu") == "torch-cpu"
    assert resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    with pytest.raises(ValueError, match="device must be one of"):
        kmeans(np.zeros((10, 16), np.float32), 2, device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        kmeans(np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32), 4, device="cuda")
