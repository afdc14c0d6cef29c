"""Does curation work? Baselines at the same subset size and the metrics that judge them.

Methods (all on the pool rows only; the labelled test rows never enter curation):
``random``, ``kmeans`` (1 level + balanced sampling), ``hierarchical`` (all levels, no
resampling), ``hierarchical_resampled`` (the configured method) and ``full`` (the pool).
Labels are used here only, never by curation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curation_assets.core import (
    HierarchicalClustering,
    LevelSpec,
    balanced_budget,
    hierarchical_kmeans,
    hierarchical_sampling,
    kde_kl_to_uniform,
    label_balance,
    normalized_entropy,
)

METHODS = ("random", "kmeans", "hierarchical", "hierarchical_resampled", "full")
ORACLE = "oracle_balanced"  # uses labels: a reference row, never a curation method
GAIN_METRICS = ("normalized_entropy", "linear_balanced_accuracy")
PAPER_2D = {"kmeans_300": 0.340, "2_level_1500_300": 0.132, "3_level_3000_1000_300": 0.081,
            "3_level_resampled": 0.042, "uniform_300_floor": 0.040}
REPRESENTATION_DIM = 32
COVERAGE_SAMPLE = 5000


@dataclass
class Task:
    """Pool embeddings (curated from), their labels (or None), and the held-out labelled test rows."""

    X_pool: np.ndarray
    y_pool: np.ndarray | None
    X_test: np.ndarray | None
    y_test: np.ndarray | None


def oracle_balanced(labels: np.ndarray, target: int, seed: int) -> np.ndarray:
    """Label-stratified sample: classes as equal as their sizes allow (water-filling over labels)."""
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(labels, return_inverse=True)
    budget = balanced_budget(np.bincount(inverse), target, rng)
    picks = [rng.choice(np.flatnonzero(inverse == c), size=int(b), replace=False) for c, b in enumerate(budget) if b]
    return np.sort(np.concatenate(picks))


def method_indices(method: str, X: np.ndarray, levels: list[LevelSpec], target: int, seed: int,
                   metric: str, strategy: str = "random", alpha: float = 0.0,
                   labels: np.ndarray | None = None) -> np.ndarray:
    """Pool row indices a method selects for one seed (``labels`` only for the oracle reference)."""
    if method == "full":
        return np.arange(len(X))
    if method == ORACLE:
        return oracle_balanced(labels, target, seed)
    if method == "random":
        return np.sort(np.random.default_rng(seed).choice(len(X), size=target, replace=False))
    if method == "kmeans":
        specs = [LevelSpec(levels[0].n_clusters)]
    elif method == "hierarchical":
        specs = [LevelSpec(s.n_clusters, n_splits=s.n_splits) for s in levels]
    elif method == "hierarchical_resampled":
        specs = levels
    else:
        raise ValueError(f"unknown method {method!r}; known: {METHODS}")
    h = hierarchical_kmeans(X, specs, seed=seed, metric=metric)
    return hierarchical_sampling(h, target, strategy=strategy, seed=seed, alpha=alpha)


def _probe_scores(X_train, y_train, X_eval, y_eval) -> dict[str, float]:
    """Linear probe (logistic regression) and kNN: balanced and worst-class accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, recall_score
    from sklearn.neighbors import KNeighborsClassifier

    out = {}
    models = {"linear": LogisticRegression(max_iter=300, C=1.0),
              "knn": KNeighborsClassifier(n_neighbors=min(10, len(X_train)), weights="distance")}
    labels = np.unique(y_eval)
    for name, model in models.items():
        if len(np.unique(y_train)) < 2:
            pred = np.full(len(y_eval), y_train[0])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred = model.fit(X_train, y_train).predict(X_eval)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[f"{name}_balanced_accuracy"] = float(balanced_accuracy_score(y_eval, pred))
            out[f"{name}_worst_class_accuracy"] = float(recall_score(y_eval, pred, labels=labels,
                                                                     average=None, zero_division=0).min())
    return out


def whitening(X_subset: np.ndarray, dim: int = REPRESENTATION_DIM) -> Callable[[np.ndarray], np.ndarray]:
    """A representation learned on the subset only, without labels: PCA-whitening to ``dim``."""
    mean = X_subset.mean(axis=0)
    _, s, vt = np.linalg.svd(X_subset - mean, full_matrices=False)
    k = min(dim, len(s))
    scale = s[:k] / np.sqrt(max(1, len(X_subset) - 1))
    W = vt[:k].T / np.maximum(scale, 1e-6)
    return lambda Z: (Z - mean) @ W


def coverage_distance(X: np.ndarray, selected: np.ndarray, seed: int = 0) -> float:
    """Mean distance of (a sample of) pool points to their nearest selected point."""
    import faiss

    rng = np.random.default_rng(seed)
    probe = X if len(X) <= COVERAGE_SAMPLE else X[np.sort(rng.choice(len(X), COVERAGE_SAMPLE, replace=False))]
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(np.ascontiguousarray(X[np.unique(selected)], dtype=np.float32))
    D, _ = index.search(np.ascontiguousarray(probe, dtype=np.float32), 1)
    return float(np.sqrt(np.maximum(D[:, 0], 0)).mean())


def score_subset(task: Task, idx: np.ndarray, tree: HierarchicalClustering) -> dict[str, float]:
    """Every metric of one subset (row indices into the pool)."""
    scores = {f"cluster_entropy_level_{t}": normalized_entropy(np.bincount(tree.labels(t)[idx]),
                                                               tree.levels[t - 1].n_clusters)
              for t in range(1, tree.n_levels + 1)}
    scores["coverage_mean_distance"] = coverage_distance(task.X_pool, idx)
    if task.y_pool is None:
        return scores
    scores.update(label_balance(task.y_pool[idx], task.y_pool))
    if task.X_test is None or len(task.X_test) == 0:
        return scores
    scores.update(_probe_scores(task.X_pool[idx], task.y_pool[idx], task.X_test, task.y_test))
    # The paper's protocol in miniature: a representation learned on the subset (no labels),
    # judged by kNN / linear probe on one fixed labelled split (half the test rows train, half evaluate).
    rep = whitening(np.asarray(task.X_pool[idx], dtype=np.float64))
    half = np.random.default_rng(0).permutation(len(task.X_test))
    a, b = half[: len(half) // 2], half[len(half) // 2:]
    rep_scores = _probe_scores(rep(task.X_test[a]), task.y_test[a], rep(task.X_test[b]), task.y_test[b])
    scores.update({f"representation_{k}": v for k, v in rep_scores.items()})
    return scores


def benchmark(task: Task, levels: list[LevelSpec], target: int, seeds=(0, 1, 2), metric: str = "l2",
              strategy: str = "random", tree: HierarchicalClustering | None = None,
              methods=METHODS, alpha: float = 0.0) -> list[dict]:
    """Long-form rows (method, metric, value, std) averaged over seeds; ``full`` is scored once.

    With labels, adds the ``oracle_balanced`` reference and, per method, ``gain_share_<metric>`` =
    (m − m_random) / (m_oracle − m_random): the share of the oracle's gain over random it captures.
    """
    X = np.ascontiguousarray(task.X_pool, dtype=np.float32)
    tree = tree or hierarchical_kmeans(X, levels, seed=0, metric=metric)
    methods = list(methods) + ([ORACLE] if task.y_pool is not None and ORACLE not in methods else [])
    rows, per_seed = [], {}
    for method in methods:
        runs = [score_subset(task, method_indices(method, X, levels, target, seed, metric, strategy, alpha,
                                                  task.y_pool), tree)
                for seed in (seeds[:1] if method == "full" else seeds)]
        per_seed[method] = runs
        for metric_name in runs[0]:
            values = np.array([r[metric_name] for r in runs])
            rows.append({"method": method, "metric": metric_name, "value": float(values.mean()),
                         "std": float(values.std()), "seeds": len(runs)})
    if ORACLE in per_seed and "random" in per_seed:
        rows += gain_share_rows(rows)
    return rows


def gain_share_rows(rows: list[dict]) -> list[dict]:
    """Share of the oracle's gain over random each method captures, for label entropy and probe accuracy."""
    value = {(r["method"], r["metric"]): r["value"] for r in rows}
    out = []
    for metric_name in GAIN_METRICS:
        if (ORACLE, metric_name) not in value:
            continue
        base, oracle = value[("random", metric_name)], value[(ORACLE, metric_name)]
        for method in dict.fromkeys(r["method"] for r in rows):
            if method in (ORACLE, "random") or (method, metric_name) not in value:
                continue
            share = (value[(method, metric_name)] - base) / (oracle - base) if oracle != base else float("nan")
            out.append({"method": method, "metric": f"gain_share_{metric_name}", "value": float(share),
                        "std": 0.0, "seeds": 0})
    return out


def simulated_kl_rows(X: np.ndarray, seeds=(0, 1, 2)) -> list[dict]:
    """The paper's 2-D table: KL(KDE of final centroids ‖ uniform) per configuration, with its values."""
    configs = {
        "kmeans_300": [LevelSpec(300)],
        "2_level_1500_300": [LevelSpec(1500), LevelSpec(300)],
        "3_level_3000_1000_300": [LevelSpec(3000), LevelSpec(1000), LevelSpec(300)],
        "3_level_resampled": [LevelSpec(3000, 10, 2), LevelSpec(1000, 10, 2), LevelSpec(300, 10, 2)],
    }
    rows = []
    for name, specs in configs.items():
        vals = np.array([kde_kl_to_uniform(hierarchical_kmeans(X, specs, seed=s).centroids(len(specs)))
                         for s in seeds])
        rows.append({"method": name, "metric": "kde_kl_to_uniform", "value": float(vals.mean()),
                     "std": float(vals.std()), "seeds": len(seeds)})
    floor = np.array([kde_kl_to_uniform(np.random.default_rng(s).uniform(-3, 3, (300, 2))) for s in seeds])
    rows.append({"method": "uniform_300_floor", "metric": "kde_kl_to_uniform", "value": float(floor.mean()),
                 "std": float(floor.std()), "seeds": len(seeds)})
    raw = kde_kl_to_uniform(X)
    rows.append({"method": "raw_data", "metric": "kde_kl_to_uniform", "value": raw, "std": 0.0, "seeds": 1})
    for row in rows:
        row["paper_value"] = PAPER_2D.get(row["method"], 0.942 if row["method"] == "raw_data" else None)
    return rows
