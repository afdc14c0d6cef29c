"""Local Ray vs in-process, on this machine, with identical results checked in the same run.

  .venv/bin/python bench/bench_ray.py [--texts 3000] [--images 3000] [--pool 500000] [--curate-items 3000]

(1) starting a local 2-CPU Ray cluster (loopback only); (2) embedding N WordNet glosses and N Fashion-MNIST
images, cold (model loads included): in-process = one model, torch on all cores; Ray = one actor per CPU,
one torch thread each; (3) one clustering level with resampling on a pool of n × 384 embedding shards
(long-tailed, k=500, m=3): k-means training stays in the driver, the 4 full-pool assignment passes run
as tasks; (4) the text partition raw_corpus → balanced_subset through the Dagster assets, both backends.
Prints markdown tables; every Ray output is compared with the in-process one (bytes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from run_all import table  # noqa: E402  (bench/ is on sys.path when this script runs)

from curation_assets.config import EmbedderConfig, ExecutionConfig, RayConfig  # noqa: E402
from curation_assets.core import LevelSpec, fit_level  # noqa: E402
from curation_assets.embedders import build_embedder  # noqa: E402
from curation_assets.execution import make_backend  # noqa: E402
from curation_assets.store import ShardedArray, ShardWriter  # noqa: E402

LOCAL = ExecutionConfig()
RAY = ExecutionConfig(backend="ray", ray=RayConfig(num_cpus=os.cpu_count()))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def embed_all(backend, cfg: EmbedderConfig, corpus: Path, column: str, n: int) -> np.ndarray:
    from functools import partial

    factory = partial(build_embedder, cfg, None, None)
    return np.concatenate([r.vectors for _, _, r in backend.embed(factory, corpus, column, n)])


def bench_embedding(work: Path, n_texts: int, n_images: int) -> list[dict]:
    from curation_assets.demo import demo_corpus

    rows = []
    for modality, column, n, cfg in (
        ("text", "text", n_texts, EmbedderConfig(kind="sentence_transformer")),
        ("image", "image", n_images, EmbedderConfig(kind="efficientnet_lite0", image_size=96)),
    ):
        corpus = work / f"{modality}.parquet"
        demo_corpus(modality, max_items=n, seed=3).select(column).write_parquet(corpus)
        local, t_local = timed(lambda: embed_all(make_backend(LOCAL), cfg, corpus, column, n))  # noqa: B023
        ray_backend = make_backend(RAY)
        ray_backend.reset_stats()
        dist, t_ray = timed(lambda: embed_all(ray_backend, cfg, corpus, column, n))  # noqa: B023
        rows.append({"pass": f"embed {n} {modality} items (cold)", "in-process s": round(t_local, 1),
                     "local Ray s": round(t_ray, 1), "Ray / in-process": round(t_ray / t_local, 2),
                     "Ray tasks": ray_backend.stats["tasks"], "Ray workers": len(ray_backend.stats["workers"]),
                     "identical": bool(np.array_equal(local, dist))})
    return rows


def bench_level(work: Path, n: int, d: int = 384) -> list[dict]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, d)).astype(np.float32)
    weights = 1.0 / np.arange(1, 1001)
    writer = ShardWriter(work / "pool")
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        c = rng.choice(1000, size=m, p=weights / weights.sum())
        writer.append(centres[c] + 0.3 * rng.standard_normal((m, d)).astype(np.float32))
    writer.publish()
    X = ShardedArray.open(work / "pool")
    spec = LevelSpec(500, resampling_steps=3, sample_size=20, n_iter=20)
    rows, levels = [], {}
    for name, cfg in (("in-process", LOCAL), ("local Ray", RAY)):
        backend = make_backend(cfg)
        backend.reset_stats()
        levels[name], seconds = timed(lambda: fit_level(X, spec, seed=0, metric="cosine",  # noqa: B023
                                                        assigner=backend.assign))  # noqa: B023
        rows.append((name, seconds, backend.stats["tasks"]))
    same = all(np.array_equal(getattr(levels["in-process"], f), getattr(levels["local Ray"], f))
               for f in ("centroids", "assignment", "distances"))
    (_, t_local, _), (_, t_ray, tasks) = rows
    return [{"pass": f"level k=500, m=3 on {n} × {d} shards (4 full-pool passes)", "in-process s": round(t_local, 1),
             "local Ray s": round(t_ray, 1), "Ray / in-process": round(t_ray / t_local, 2), "Ray tasks": tasks,
             "Ray workers": len(make_backend(RAY).stats["workers"]), "identical": same}]


def bench_partition(work: Path, items: int) -> list[dict]:
    from dagster import AssetSelection, materialize

    from curation_assets.config import load_config
    from curation_assets.definitions import build_definitions
    from curation_assets.graph.resources import ExecutionResource

    cfg = work / "curation.yaml"
    cfg.write_text(f"""modalities:
  text:
    source: {{kind: demo, demo_items: {items}}}
    embedder: {{kind: sentence_transformer}}
    metric: cosine
    levels: [{{n_clusters: {items // 20}, resampling_steps: 3}}, {{n_clusters: {items // 80}, resampling_steps: 3}}]
    sampling: {{fraction: 0.2, seed: 0}}
""")
    os.environ["CURATION_CONFIG"] = str(cfg)
    defs = build_definitions(load_config(cfg))
    selection = AssetSelection.all() - AssetSelection.assets("benchmark_scores", "curated_dataset")
    out, rows = {}, []
    for name in ("local", "ray"):
        os.environ["CURATION_DATA_DIR"] = str(work / f"data-{name}")
        _, seconds = timed(lambda: materialize(list(defs.assets), partition_key="text", selection=selection,  # noqa: B023
                                               resources={**defs.resources,
                                                          "execution": ExecutionResource(backend=name)}))  # noqa: B023
        out[name] = (pl.read_parquet(work / f"data-{name}/curated/text/subset.parquet"), seconds)
    (sub_local, t_local), (sub_ray, t_ray) = out["local"], out["ray"]
    rows.append({"pass": f"text partition, {items} glosses, raw_corpus → balanced_subset", "in-process s":
                 round(t_local, 1), "local Ray s": round(t_ray, 1), "Ray / in-process": round(t_ray / t_local, 2),
                 "Ray tasks": "-", "Ray workers": "-", "identical": sub_local.equals(sub_ray)})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=3000)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--pool", type=int, default=500_000)
    ap.add_argument("--curate-items", type=int, default=3000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        _, t_start = timed(lambda: make_backend(RAY).connect())  # imports ray after the loopback-only setting
        rows = [{"pass": f"start a local {os.cpu_count()}-CPU Ray cluster", "in-process s": 0,
                 "local Ray s": round(t_start, 1), "Ray / in-process": "-", "Ray tasks": "-", "Ray workers": "-",
                 "identical": "-"}]
        rows += bench_embedding(work, args.texts, args.images)
        rows += bench_level(work, args.pool)
        rows += bench_partition(work, args.curate_items)
        print(table(rows))
        import ray

        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
