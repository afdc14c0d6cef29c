"""Embedding throughput: our pipeline's text embedder vs a bare `model.encode` loop, same texts, same model.

Run: .venv/bin/python bench/bench_embed.py [--n 3000]
Texts are WordNet glosses from the bundled demo corpus. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    from curation_assets.demo import demo_corpus
    from curation_assets.embedders import SentenceTransformerEmbedder

    texts = demo_corpus("text", max_items=args.n, seed=1)["text"].to_list()
    ours = SentenceTransformerEmbedder(batch_size=64)
    ours.embed(texts[:64])  # load the model and warm up
    model = ours.load_model()  # the very same SentenceTransformer object
    t = time.perf_counter()
    model.encode(texts, batch_size=64)
    bare = time.perf_counter() - t
    t = time.perf_counter()
    ours.embed(texts, progress=lambda done, total: None)
    pipeline = time.perf_counter() - t
    print(json.dumps({"texts": len(texts), "bare_encode_per_s": round(len(texts) / bare, 1),
                      "pipeline_per_s": round(len(texts) / pipeline, 1), "ratio": round(bare / pipeline, 3)}))


if __name__ == "__main__":
    main()
