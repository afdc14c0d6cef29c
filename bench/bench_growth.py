"""A growing text pool through the real CLI: what one new file costs (issue 22).

N WordNet glosses (default 8000) are a user's ``raw/text/a.parquet``; the whole graph runs from scratch
(``dg launch --job curate``); then a file of 1 % new glosses lands beside it and the graph runs again. Each
step's seconds come from its record (the time of its computation); the embedding step's model load, cache
lookup and embedding are timed apart. A third run from scratch on both files checks the grown subset is the same.

    .venv/bin/python bench/bench_growth.py [--rows 8000] [--new 0.01]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml
from records import STEPS, metadata, step_seconds

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def config(path: Path) -> None:
    """The bundled text settings, on the user's files."""
    bundled = yaml.safe_load((REPO / "curation.yaml").read_text())["modalities"]["text"]
    bundled["source"] = {"kind": "files"}
    path.write_text(yaml.safe_dump({"modalities": {"text": bundled}}))


def run(root: Path, cfg: Path, home: Path) -> float:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n")
    env = {**os.environ, "CURATION_CONFIG": str(cfg), "CURATION_DATA_DIR": str(root), "DAGSTER_HOME": str(home),
           "VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    out = subprocess.run([str(BIN / "dg"), "launch", "--job", "curate", "--partition", "text"], cwd=REPO, env=env,
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    return time.perf_counter() - started


def seconds(root: Path) -> dict:
    """Each step's computation seconds (of its last computation), and the embedding step's parts."""
    out = step_seconds(root, "text")
    embed = metadata(root, "embeddings", "text")
    for part in ("model_load_seconds", "cache_lookup_seconds", "embed_seconds", "shards_from_cache_seconds",
                 "embedded_new_rows", "reused_from_cache"):
        out[part] = embed.get(part, 0)
    return out


def main() -> None:
    from curation_assets.demo import demo_corpus

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--new", type=float, default=0.01)
    args = parser.parse_args()
    n_new = max(1, round(args.rows * args.new))
    glosses = demo_corpus("text", max_items=args.rows + n_new, seed=11).sample(fraction=1.0, shuffle=True, seed=0)
    work = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    cfg = work / "curation.yaml"
    config(cfg)
    grown, scratch = work / "grown", work / "scratch"
    for root in (grown, scratch):
        (root / "raw/text").mkdir(parents=True)
        glosses.head(args.rows).write_parquet(root / "raw/text/a.parquet")
    glosses.tail(n_new).write_parquet(scratch / "raw/text/b.parquet")
    wall_first = run(grown, cfg, work / "home")
    first = seconds(grown)
    shutil.copy(scratch / "raw/text/b.parquet", grown / "raw/text/b.parquet")
    wall_grown = run(grown, cfg, work / "home")
    after = seconds(grown)
    run(scratch, cfg, work / "home2")
    same = pl.read_parquet(grown / "curated/text/subset.parquet").equals(
        pl.read_parquet(scratch / "curated/text/subset.parquet"))
    report(args, n_new, first, after, wall_first, wall_grown, same)


def report(args, n_new, first, after, wall_first, wall_grown, same) -> None:
    print(f"machine: {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}; pool {args.rows} glosses + {n_new} new\n")
    print("| step | from scratch s | after +1 % s | share |\n|---|---|---|---|")
    steps = [s for s in STEPS if s in first]
    for step in steps:
        print(f"| {step} | {first[step]:.2f} | {after[step]:.2f} | {after[step] / max(first[step], 1e-9):.0%} |")
    embed_less_load = after["embeddings"] - (after["model_load_seconds"] or 0)
    others = [s for s in steps if s != "benchmark_scores"]
    print(f"\nembeddings after +1 %: {after['embedded_new_rows']} embedded, {after['reused_from_cache']} reused; "
          f"model load {after['model_load_seconds']} s, cache lookup {after['cache_lookup_seconds']} s, "
          f"embedding {after['embed_seconds']} s, shards from the cache {after['shards_from_cache_seconds']} s")
    print(f"embeddings step less the model load: {embed_less_load:.2f} s = "
          f"{embed_less_load / first['embeddings']:.1%} of the full embed ({first['embeddings']:.2f} s)")
    print(f"every step but benchmark_scores: {sum(after[s] for s in others):.2f} s = "
          f"{sum(after[s] for s in others) / sum(first[s] for s in others):.1%} of from scratch "
          f"({sum(first[s] for s in others):.2f} s)")
    print(f"CLI wall: {wall_first:.1f} s from scratch, {wall_grown:.1f} s after +1 %; grown subset == scratch "
          f"subset on the same files: {same}")


if __name__ == "__main__":
    main()
