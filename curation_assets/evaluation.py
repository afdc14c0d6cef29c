"""Does curation work? The published subset against baselines of the same size, and the metrics that judge them.

Methods, all drawn from the whole pool (curation never sees a label):
``published`` (the rows of ``subset.parquet``), ``random``, ``kmeans`` (1 level + balanced sampling),
``hierarchical`` (the configured levels without resampling), ``hierarchical_resampled`` (the configured
method recomputed in memory, per seed), ``full`` (the pool) and the label-aware reference
``oracle_balanced``. Labels serve here only: balance of a selection's labelled rows, and probes trained
on a selection minus an evaluation split (at most a modest share of each class) and tested on that split.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

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

PUBLISHED = "published"
METHODS = ("random", "kmeans", "hierarchical", "hierarchical_resampled", "full")
ORACLE = "oracle_balanced"  # uses labels: a reference row, never a curation method
GAIN_METRICS = ("normalized_entropy", "linear_balanced_accuracy")
PAPER_2D = {"kmeans_300": 0.340, "2_level_1500_300": 0.132, "3_level_3000_1000_300": 0.081,
            "3_level_resampled": 0.042, "uniform_300_floor": 0.040, "raw_data": 0.942}
REPRESENTATION_DIM = 32
COVERAGE_SAMPLE = 5000


@dataclass(frozen=True)
class Task:
    """The pool to curate: its vectors (n, d), its labels (object array, None where a row has none; or None
    when no row has one) and the evaluation split (bool mask, n), drawn only when there are labels."""

    X: np.ndarray
    labels: np.ndarray | None
    test: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, labels: np.ndarray | None, per_class: int, max_share: float, seed: int) -> Task:
        test = evaluation_split(labels, per_class, max_share, seed) if labels is not None else \
            np.zeros(len(X), dtype=bool)
        return cls(np.ascontiguousarray(X, dtype=np.float32), labels, test)

    @property
    def labelled(self) -> np.ndarray:
        return np.zeros(len(self.X), dtype=bool) if self.labels is None else \
            np.array([v is not None for v in self.labels])


def evaluation_split(labels: np.ndarray, per_class: int, max_share: float, seed: int) -> np.ndarray:
    """Bool mask of evaluation rows: per class min(per_class, ⌊max_share · class size⌋) labelled rows, seeded.

    The split is small on purpose (a class of 45 gives at most 9 rows at max_share 0.2): it serves the
    probes only, while curation keeps seeing every row.
    """
    test = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    known = np.array([v is not None for v in labels])
    values = np.asarray(labels[known]).astype(str)
    rows = np.flatnonzero(known)
    for label in np.unique(values):
        members = rows[values == label]
        take = min(per_class, int(max_share * len(members)))
        if take:
            test[rng.choice(members, size=take, replace=False)] = True
    return test


def oracle_balanced(labels: np.ndarray, target: int, seed: int) -> np.ndarray:
    """Label-stratified sample of labelled rows: classes as equal as their sizes allow (water-filling)."""
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero([v is not None for v in labels])
    classes, inverse = np.unique(np.asarray(labels[rows]).astype(str), return_inverse=True)
    budget = balanced_budget(np.bincount(inverse), min(target, len(rows)), rng)
    picks = [rng.choice(rows[inverse == c], size=int(b), replace=False) for c, b in enumerate(budget) if b]
    return np.sort(np.concatenate(picks))


def method_levels(method: str, levels: tuple[LevelSpec, ...]) -> tuple[LevelSpec, ...]:
    """The levels a hierarchical method fits: one plain level, all levels without resampling, or as configured."""
    if method == "kmeans":
        return (replace(levels[0], resampling_steps=0, n_splits=1),)
    if method == "hierarchical":
        return tuple(replace(s, resampling_steps=0) for s in levels)
    if method == "hierarchical_resampled":
        return tuple(levels)
    raise ValueError(f"unknown method {method!r}; known: {METHODS}")


@dataclass(frozen=True)
class Curation:
    """How the published subset was made (levels, metric, sampling), to recompute methods in memory."""

    levels: tuple[LevelSpec, ...]
    metric: str = "l2"
    strategy: str = "random"
    alpha: float = 0.0
    multiplier: int = 1

    def select(self, method: str, task: Task, target: int, seed: int) -> np.ndarray:
        """Pool row indices a method selects for one seed."""
        if method == "full":
            return np.arange(len(task.X))
        if method == ORACLE:
            return oracle_balanced(task.labels, target, seed)
        if method == "random":
            return np.sort(np.random.default_rng(seed).choice(len(task.X), size=target, replace=False))
        h = hierarchical_kmeans(task.X, method_levels(method, self.levels), seed=seed, metric=self.metric)
        return hierarchical_sampling(h, target, strategy=self.strategy, multiplier=self.multiplier, seed=seed,
                                     alpha=self.alpha)


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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = np.full(len(y_eval), y_train[0]) if len(np.unique(y_train)) < 2 else \
                model.fit(X_train, y_train).predict(X_eval)
            out[f"{name}_balanced_accuracy"] = float(balanced_accuracy_score(y_eval, pred))
            out[f"{name}_worst_class_accuracy"] = float(recall_score(y_eval, pred, labels=labels, average=None,
                                                                     zero_division=0).min())
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


def _label_scores(task: Task, idx: np.ndarray) -> dict[str, float]:
    labelled = task.labelled
    chosen = idx[labelled[idx]]
    if len(chosen) == 0:
        return {}
    scores = label_balance(np.asarray(task.labels[chosen]).astype(str), np.asarray(task.labels[labelled]).astype(str))
    train = chosen[~task.test[chosen]]
    test = np.flatnonzero(task.test)
    if len(train) == 0 or len(test) == 0:
        return scores
    y = np.asarray(task.labels, dtype=object)
    scores.update(_probe_scores(task.X[train], y[train].astype(str), task.X[test], y[test].astype(str)))
    # The paper's protocol in miniature: a representation learned on the selection (no labels, evaluation
    # rows left out), judged by probes on one fixed half/half cut of the evaluation split.
    rep = whitening(np.asarray(task.X[idx[~task.test[idx]]], dtype=np.float64))
    half = np.random.default_rng(0).permutation(test)
    a, b = half[: len(half) // 2], half[len(half) // 2:]
    rep_scores = _probe_scores(rep(task.X[a]), y[a].astype(str), rep(task.X[b]), y[b].astype(str))
    scores.update({f"representation_{k}": v for k, v in rep_scores.items()})
    return scores


def score_selection(task: Task, idx: np.ndarray, tree: HierarchicalClustering) -> dict[str, float]:
    """Every metric of one selection (pool row indices): cluster balance per level of the published tree,
    coverage, and with labels the label balance and probe accuracies."""
    scores = {f"cluster_entropy_level_{t}": normalized_entropy(np.bincount(tree.labels(t)[idx]),
                                                               tree.levels[t - 1].n_clusters)
              for t in range(1, tree.n_levels + 1)}
    scores["coverage_mean_distance"] = coverage_distance(task.X, idx)
    return {**scores, **_label_scores(task, idx)}


def _rows(method: str, runs: list[dict]) -> list[dict]:
    out = []
    for metric_name in runs[0]:
        values = np.array([r[metric_name] for r in runs if metric_name in r])
        out.append({"method": method, "metric": metric_name, "value": float(values.mean()),
                    "std": float(values.std()), "spread": float(values.max() - values.min()), "seeds": len(values)})
    return out


def benchmark(task: Task, published: np.ndarray, tree: HierarchicalClustering, curation: Curation,
              seeds=(0, 1, 2), methods=METHODS) -> list[dict]:
    """Long-form rows (method, metric, value, std, spread, seeds): the published selection once, every
    method over ``seeds`` at the published size (``full`` once).

    With labels, adds ``oracle_balanced`` and, per method, ``gain_share_<metric>`` =
    (m − m_random) / (m_oracle − m_random): the share of the oracle's gain over random it captures.
    """
    target = len(published)
    rows = _rows(PUBLISHED, [score_selection(task, published, tree)])
    methods = list(methods) + ([ORACLE] if task.labels is not None else [])
    for method in methods:
        runs = [score_selection(task, curation.select(method, task, target, seed), tree)
                for seed in (seeds[:1] if method == "full" else seeds)]
        rows += _rows(method, runs)
    return rows + (gain_share_rows(rows) if task.labels is not None else [])


def gain_share_rows(rows: list[dict]) -> list[dict]:
    """Share of the oracle's gain over random each method captures, for label entropy and probe accuracy."""
    value = {(r["method"], r["metric"]): r["value"] for r in rows}
    out = []
    for metric_name in GAIN_METRICS:
        if (ORACLE, metric_name) not in value or ("random", metric_name) not in value:
            continue
        base, oracle = value[("random", metric_name)], value[(ORACLE, metric_name)]
        for method in dict.fromkeys(r["method"] for r in rows):
            if method in (ORACLE, "random") or (method, metric_name) not in value:
                continue
            share = (value[(method, metric_name)] - base) / (oracle - base) if oracle != base else float("nan")
            out.append({"method": method, "metric": f"gain_share_{metric_name}", "value": float(share),
                        "std": 0.0, "spread": 0.0, "seeds": 0})
    return out


def simulated_kl_rows(X: np.ndarray, seeds=(0, 1, 2)) -> list[dict]:
    """The paper's 2-D table: KL(KDE of final centroids ‖ uniform) per configuration, with its values."""
    configs = {
        "kmeans_300": [LevelSpec(300)],
        "2_level_1500_300": [LevelSpec(1500), LevelSpec(300)],
        "3_level_3000_1000_300": [LevelSpec(3000), LevelSpec(1000), LevelSpec(300)],
        "3_level_resampled": [LevelSpec(3000, 10, 2), LevelSpec(1000, 10, 2), LevelSpec(300, 10, 2)],
    }
    runs = {name: [{"kde_kl_to_uniform": kde_kl_to_uniform(hierarchical_kmeans(X, specs, seed=s)
                                                           .centroids(len(specs)))} for s in seeds]
            for name, specs in configs.items()}
    runs["uniform_300_floor"] = [{"kde_kl_to_uniform": kde_kl_to_uniform(
        np.random.default_rng(s).uniform(-3, 3, (300, 2)))} for s in seeds]
    runs["raw_data"] = [{"kde_kl_to_uniform": kde_kl_to_uniform(X)}]
    rows = [row for name, r in runs.items() for row in _rows(name, r)]
    return [{**row, "paper_value": PAPER_2D[row["method"]]} for row in rows]
