"""The curation library: hierarchical k-means with resampling and balanced hierarchical sampling.

Pure numpy + faiss (no Dagster, no torch): import it from a notebook.

>>> from curation_assets.core import LevelSpec, hierarchical_kmeans, hierarchical_sampling
>>> h = hierarchical_kmeans(X, [LevelSpec(1000, 10, 15), LevelSpec(300, 10, 2)], seed=0)
>>> idx = hierarchical_sampling(h, target_size=1000, strategy="random", seed=0)
"""

from curation_assets.core.assignment import Assigner, Metric
from curation_assets.core.clustering import KMeansResult, assign, kmeans
from curation_assets.core.devices import resolve_device
from curation_assets.core.hierarchy import (
    HierarchicalClustering,
    Level,
    LevelSpec,
    fit_level,
    hierarchical_kmeans,
    level_seed,
    plan_level,
)
from curation_assets.core.metrics import (
    cluster_size_stats,
    gini,
    kde_kl_to_uniform,
    kl_to_uniform,
    label_balance,
    normalized_entropy,
)
from curation_assets.core.sampling import balanced_budget, hierarchical_sampling, tempered_budget
from curation_assets.core.seeding import kmeans_plusplus
from curation_assets.core.splits import Splitter

__all__ = [
    "Assigner", "HierarchicalClustering", "KMeansResult", "Level", "LevelSpec", "Metric", "assign",
    "balanced_budget", "cluster_size_stats", "fit_level", "gini", "hierarchical_kmeans", "hierarchical_sampling",
    "kde_kl_to_uniform", "kl_to_uniform", "kmeans", "kmeans_plusplus", "label_balance", "level_seed",
    "normalized_entropy", "plan_level", "resolve_device", "Splitter", "tempered_budget",
]
