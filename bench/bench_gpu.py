"""Issue 18 on a GPU, one command: the 1M × 384 clustering job on cuda, and MiniLM embedding throughput.

On a machine with a GPU:   .venv/bin/python bench/bench_gpu.py [--cpu]
Here, without one:         .venv/bin/python bench/bench_gpu.py --quick

(a) Clustering: a long-tailed n × 384 pool (bench_scale.py ``gen --kind longtail``, 1.5 GB per million rows,
    under /tmp and removed afterwards), issue 18's job through ``bench_scale.py run --levels issue18``:
    3 levels k = 2000 / 500 / 100, r = 10 / 5 / 2, 10 resampling steps each, a 10 % subset. Each run is a
    fresh process; the table gives its clustering seconds (per level, cumulative), the untimed warm-up
    (CUDA context, kernels), the subset's concept KL-to-uniform and the peak RSS. ``--cpu`` runs the faiss
    CPU path on the same pool too (all cores; the issue measured 382.7 s on 16 cores).
(b) Embedding: all-MiniLM-L6-v2 (the default text embedder) on the demo corpus's WordNet glosses: texts/s
    at batch sizes 64, 256 and 1024 on the GPU, and at 64 on the CPU (fewer texts), after a warm-up batch.
Without a GPU the torch path runs on the CPU (``torch-cpu``) in place of cuda, so the script is checked
end to end; ``--quick`` shrinks it to a 20k pool (k = 200 / 50 / 10) and 512 texts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(str(r.get(c, "–")) for c in cols) + " |" for r in rows])


def clustering(pool: str, device: str, levels: str) -> dict:
    """One ``bench_scale.py run`` in a fresh process; its JSON line as a table row."""
    out = subprocess.run([sys.executable, str(HERE / "bench_scale.py"), "run", "--data", pool, "--levels", levels,
                          "--device", device], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    res = json.loads(out.stdout.splitlines()[-1])
    return {"device": res["device"], "n × d": f"{res['n']} × {res['d']}",
            "levels (k)": "/".join(map(str, res["clusters"])), "warm-up s": res["warmup_s"],
            **{f"level {t} s (cum.)": res[f"level_{t}_s"] for t in range(1, len(res["clusters"]) + 1)},
            "clustering s": res["clustering_s"], "sampling s": res["sampling_s"],
            "concept KL": res.get("concept_kl_to_uniform", "–"), "peak RSS MB": res["peak_rss_mb"]}


def embedding(device: str, batch_sizes: list[int], n_texts: int) -> list[dict]:
    """MiniLM texts/s on ``device`` at every batch size (the model loaded and warmed up first)."""
    from curation_assets.demo import demo_corpus
    from curation_assets.embedders import SentenceTransformerEmbedder

    texts = demo_corpus("text", max_items=n_texts, seed=1)["text"].to_list()
    rows = []
    for batch in batch_sizes:
        embedder = SentenceTransformerEmbedder(batch_size=batch, device=device)
        embedder.embed(texts[:batch])
        start = time.perf_counter()
        vectors = embedder.embed(texts).vectors  # back on the host: the device work is finished
        seconds = time.perf_counter() - start
        rows.append({"device": embedder.device, "batch size": batch, "texts": len(vectors),
                     "seconds": round(seconds, 2), "texts/s": round(len(vectors) / seconds)})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", action="store_true", help="also run the clustering job on the faiss CPU path")
    ap.add_argument("--quick", action="store_true", help="a 20k pool and 512 texts: checks the script in a minute")
    ap.add_argument("--n", type=int, default=None, help="pool rows (default 1000000; --quick 20000)")
    ap.add_argument("--skip-embedding", action="store_true")
    args = ap.parse_args()
    import torch

    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "torch-cpu"
    n = args.n or (20_000 if args.quick else 1_000_000)
    levels = "issue18-small" if args.quick else "issue18"
    print(f"machine: {os.cpu_count()} cores, "
          + (f"GPU {torch.cuda.get_device_name()}" if gpu else "no GPU: the torch path runs on the CPU")
          + f"; torch {torch.__version__}, float32 matmul precision {torch.get_float32_matmul_precision()}; "
            f"load {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        pool = str(Path(tmp) / "pool.npy")
        subprocess.run([sys.executable, str(HERE / "bench_scale.py"), "gen", "--n", str(n), "--kind", "longtail",
                        "--out", pool], check=True)
        rows = [clustering(pool, device, levels)] + ([clustering(pool, "cpu", levels)] if args.cpu else [])
    print(f"\n(a) issue 18's job on a long-tailed {n} × 384 pool, 10 % subset\n\n{table(rows)}", flush=True)
    if not args.quick and gpu:
        print(f"\nclustering on the GPU: {rows[0]['clustering s']} s (issue 18's target: at most 10 s)")
    if not args.skip_embedding:
        n_texts = 512 if args.quick else 50_000
        emb = embedding(device.replace("torch-", ""), [64] if args.quick else [64, 256, 1024], n_texts)
        if gpu:
            emb += embedding("cpu", [64], 512 if args.quick else 5000)
        print(f"\n(b) all-MiniLM-L6-v2 embedding throughput\n\n{table(emb)}")


if __name__ == "__main__":
    main()
