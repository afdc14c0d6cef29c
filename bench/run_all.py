"""The benchmark suite's single entry point: prints one markdown table per section.

  .venv/bin/python bench/run_all.py [--sizes 100000 300000 1000000] [--sklearn-sizes 100000] [--quick]
                                    [--sections clustering embedding cli]

(1) hierarchical k-means + sampling (bench_scale.py) on random and long-tailed pools, d=384, the default
    4 levels (k = 2000 × split 10, 2000, 500, 100; default k-means settings, n_iter=50) and a 10 % draw:
    wall time, peak RSS (/usr/bin/time -v), the subset's concept KL-to-uniform (long-tailed pools),
    GFLOP/s of the distance work actually done vs sgemm;
(2) the same with scikit-learn's KMeans inside the hierarchy (part of the clustering section);
(3) text embedding throughput: pipeline embedder vs a bare model.encode loop (bench_embed.py);
(4) end-to-end text curation of a 20k-document corpus through the real Dagster CLI.
Pools are generated under a temp directory (1.5 GB per million points) and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dagster import deserialize_value

from curation_assets.store import Embeddings, Layout

HERE = Path(__file__).resolve().parent
PY = sys.executable
SECTIONS = ("clustering", "embedding", "cli")


def timed_json(cmd: list[str], env=None) -> tuple[dict, float, float]:
    """Run under /usr/bin/time -v; returns (last JSON line, wall s, peak RSS MB)."""
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", out.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), seconds, rss


def sgemm_peak() -> float:
    code = ("import numpy as np,time;a=np.random.rand(2048,2048).astype('f4');a@a;"
            "t=min((lambda s:(a@a,time.perf_counter()-s)[1])(time.perf_counter()) for _ in range(5));"
            "print(2*2048**3/t/1e9)")
    return float(subprocess.run([PY, "-c", code], capture_output=True, text=True).stdout)


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows])


def clustering_section(tmp: Path, sizes, sklearn_sizes, peak) -> tuple[str, str]:
    ours, theirs = [], []
    for kind in ("random", "longtail"):
        for n in sizes:
            data = tmp / f"{kind}_{n}.npy"
            subprocess.run([PY, str(HERE / "bench_scale.py"), "gen", "--n", str(n), "--kind", kind,
                            "--out", str(data)], check=True)
            for engine in ["ours"] + (["sklearn"] if n in sklearn_sizes else []):
                res, wall, rss = timed_json([PY, str(HERE / "bench_scale.py"), "run", "--data", str(data),
                                             "--engine", engine])
                row = {"pool": kind, "n × d": f"{n} × 384", "levels (k)": "/".join(map(str, res["clusters"])),
                       "level 1 s": res["level_1_s"], "clustering s": res["clustering_s"],
                       "sampling s": res["sampling_s"], "wall s (process)": round(wall, 1),
                       "peak RSS MB": round(rss), "concept KL": res.get("concept_kl_to_uniform", "–"),
                       "GFLOP done": res["gflop"], "GFLOP/s": res["gflops_per_s"],
                       "% of sgemm": f"{100 * res['gflops_per_s'] / peak:.0f} %"}
                print(f"{engine}: {row}", file=sys.stderr, flush=True)
                (ours if engine == "ours" else theirs).append(row)
            data.unlink()
            Path(f"{data}.concepts.npy").unlink(missing_ok=True)
    return table(ours), (table(theirs) if theirs else "(not run)")


def e2e_text(tmp: Path, n_docs: int) -> str:
    cfg = tmp / "curation.yaml"
    cfg.write_text(f"""modalities:
  text:
    source: {{kind: demo, demo_items: {n_docs}}}
    embedder: {{kind: sentence_transformer, batch_size: 64}}
    metric: cosine
    sampling: {{fraction: 0.2}}
""")
    home = tmp / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    env = {**os.environ, "CURATION_CONFIG": str(cfg), "CURATION_DATA_DIR": str(tmp / "data"),
           "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    _, wall, rss = timed_json([str(Path(PY).parent / "dagster"), "asset", "materialize", "-m", "curation_assets",
                               "--select", "*balanced_subset", "--partition", "text"], env=env)
    meta = deserialize_value(Embeddings.open(Layout("text", tmp / "data")).record.metadata, dict)
    return table([{"documents": n_docs, "wall s (CLI, raw_corpus → balanced_subset)": round(wall, 1),
                   "embedding s": meta["seconds"], "docs/s": meta["items_per_second"],
                   "peak RSS MB (largest process)": round(rss), "total incl. start-up s":
                   round(time.perf_counter() - t, 1)}])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--sklearn-sizes", type=int, nargs="*", default=[100_000])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="100k only, 2000 documents")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                    help="clustering = tables (1) and (2), embedding = (3), cli = (4)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.docs = [100_000], 2000
    peak = sgemm_peak()
    print(f"machine: {os.cpu_count()} cores; sgemm 2048² peak {peak:.0f} GFLOP/s; load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "clustering" in args.sections:
            ours, theirs = clustering_section(tmp, args.sizes, args.sklearn_sizes, peak)
            print("\n(1) hierarchical k-means + balanced sampling, ours\n\n" + ours, flush=True)
            print("\n(2) the same hierarchy with scikit-learn KMeans\n\n" + theirs, flush=True)
        if "embedding" in args.sections:
            emb, _, _ = timed_json([PY, str(HERE / "bench_embed.py")])
            print("\n(3) text embedding throughput (all-MiniLM-L6-v2, CPU)\n\n" + table([emb]), flush=True)
        if "cli" in args.sections:
            print("\n(4) end-to-end text curation through the Dagster CLI\n\n" + e2e_text(tmp, args.docs))


if __name__ == "__main__":
    main()
