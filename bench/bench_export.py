"""Peak memory of the curated_dataset export on a large text pool, through the real CLI.

  .venv/bin/python bench/bench_export.py [--rows 100000] [--fraction 0.5]

1. Materializes raw_corpus → balanced_subset in-process on ``--rows`` WordNet glosses (the bundled demo,
   which has 117k), with a fast stand-in embedder (random unit vectors seeded by the text: the export
   never reads embeddings, so their quality does not matter here);
2. runs ``dagster asset materialize --select curated_dataset`` under ``/usr/bin/time -v`` and prints its wall
   time and peak RSS, beside the size of the corpus and of the exported shards, and the peak RSS of a
   process that only reads the whole corpus into memory (what a non-streaming export would start from).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIG = """
modalities:
  text:
    source: {{kind: demo, demo_items: {rows}}}
    embedder: {{kind: sentence_transformer}}
    metric: cosine
    levels: [{{per_cluster: 200}}, {{per_cluster: 10}}]  # light: the export is what is measured
    sampling: {{fraction: {fraction}}}
    export: {{shard_rows: 20000}}
"""


class StandInEmbedder:
    name, dim = "stand-in-384", 384

    def embed(self, items, progress=None):
        from curation_assets.embedders import EmbedResult

        vecs = np.stack([np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16))
                         .standard_normal(self.dim) for t in items]).astype(np.float32)
        return EmbedResult(vecs / np.linalg.norm(vecs, axis=1, keepdims=True))


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a command under /usr/bin/time -v."""
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", out.stderr).group(1)
    return sum(float(p) * 60**i for i, p in enumerate(reversed(wall.split(":")))), rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--fraction", type=float, default=0.5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    config = tmp / "curation.yaml"
    config.write_text(CONFIG.format(rows=args.rows, fraction=args.fraction))
    env = {**os.environ, "CURATION_CONFIG": str(config), "CURATION_DATA_DIR": str(tmp / "data"),
           "DAGSTER_HOME": str(tmp / "home"), "HF_HUB_OFFLINE": "1"}
    (tmp / "home").mkdir()
    (tmp / "home/dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    os.environ.update(env)
    from dagster import materialize

    from curation_assets.config import load_config
    from curation_assets.definitions import build_definitions
    from curation_assets.graph.resources import EmbedderResource

    class StandIn(EmbedderResource):
        def factory(self, cfg):
            return StandInEmbedder

    defs = build_definitions(load_config(config))
    upstream = [a.key for a in defs.assets if a.key.to_user_string() not in ("benchmark_scores", "curated_dataset")]
    materialize(list(defs.assets), partition_key="text", resources={**defs.resources, "embedder": StandIn()},
                selection=upstream)
    wall, rss = timed([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "curation_assets",
                       "--select", "curated_dataset", "--partition", "text"], env)
    corpus = tmp / "data/corpus/text/corpus.parquet"
    read_all = "import polars as pl, sys; pl.read_parquet(sys.argv[1])"
    _, read_rss = timed([sys.executable, "-c", read_all, str(corpus)], env)
    shards = sorted((tmp / "data/datasets/text/data").glob("*.parquet"))
    import polars as pl

    rows = sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in shards)
    print("| pool rows | exported rows | shards | corpus MB (Parquet) | dataset MB | export wall s (CLI) "
          "| export peak RSS MB | read whole corpus peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.rows} | {rows} | {len(shards)} | {corpus.stat().st_size / 2**20:.1f} | "
          f"{sum(p.stat().st_size for p in shards) / 2**20:.1f} | {wall:.1f} | {rss:.0f} | {read_rss:.0f} |")


if __name__ == "__main__":
    main()
