"""Defaults that carry over: leave-one-pool-out tuning of the bundled curation recipe (issue 24, item 3).

  nice -n 10 .venv/bin/python bench/tune_defaults.py [--work /tmp/tune-defaults]
      [--stage all|embed|screen|finalists|confirm|report] [--screen-seeds 10] [--confirm-seeds 10]
      [--probe-seeds 3] [--finalists 6] [--pools ...]

Every pool is labelled, embedded ONCE with the project's own embedder (cached under ``--work`` as .npz) and
de-duplicated the way the ``deduplicated`` asset does it (exact copies by content, then near copies at the
embedder's ``dedup_threshold``), so each pool is what the graph would curate:

* ``text_demo``       WordNet glosses, ``demo_corpus("text", max_items=12000)``, 45 lexicographer categories, MiniLM
* ``image_demo``      Fashion-MNIST long tail, ``demo_corpus("image", max_items=6000)``, EfficientNet-Lite0 @ 96 px
* ``satellite_demo``  Blue Marble tiles, ``demo_corpus("satellite", max_items=4000, tile_px=30)``, EffNet-Lite0 @ 96
* ``image_folder``    the user-shaped image folder of ``curation_assets.demo.folders`` (as ``bench/user_folders.py``)
* ``text_folder``     the user-shaped text folder (8 WordNet topics, 300 → 30, case/space variants planted)
* ``fortunes``        Debian's ``fortunes`` package (``apt-get install fortunes``): one row per fortune, label = its
                      file (category); categories with >= 20 fortunes, a stratified sample of 6000, MiniLM

A candidate default is a *relative* recipe, the same for every pool (what a user who tunes nothing gets):
levels (1-3) with ``per_cluster`` of level 1 and a constant ratio between levels, ``resampling_steps`` on every
level (r = the paper's rule), and the sampling ``alpha``; metric cosine, final draw random, subset = 20 % of the
pool. Score: the margin over random of the subset's normalised label entropy, H(subset) − mean H of random
subsets of the same size (``RANDOM_DRAWS`` of them), per pool; mean ± standard error over seeds (the tree and the
draw both use the seed). A candidate's worst-pool margin is its smallest per-pool mean margin.

Stages: ``screen`` runs every candidate on ``--screen-seeds`` seeds; ``finalists`` picks the finalists (the best by
worst-pool margin, the leave-one-pool-out picks, the bundled recipes) from every pool's screening; ``confirm``
re-runs them on ``--confirm-seeds`` fresh seeds and, on the first ``--probe-seeds`` of them, adds the linear-probe
balanced-accuracy margin (``evaluation._probe_scores`` on the benchmark's evaluation split);
``report`` prints the markdown tables and writes ``bench/results/tune_defaults.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FRACTION = 0.2
METRIC = "cosine"
RANDOM_DRAWS = 400
RANDOM_PROBES = 10  # random subsets probed (the probe's random baseline)
FORTUNES_DIR = Path("/usr/share/games/fortunes")
FORTUNES_MIN_CLASS = 20
FORTUNES_ITEMS = 6000
POOLS = ("text_demo", "image_demo", "satellite_demo", "image_folder", "text_folder", "fortunes")
SCREEN_SEED0 = 0
CONFIRM_SEED0 = 1000  # fresh seeds for the confirmation: no winner's curse from the screening


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- pools
def _fortunes_rows():
    rows = []
    for f in sorted(FORTUNES_DIR.iterdir()):
        if f.suffix or f.is_symlink() or not f.is_file():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        items = [t.strip() for t in text.split("\n%\n")]
        items = [" ".join(t.replace("%", " ").split()) for t in items if t.strip().strip("%").strip()]
        rows += [(f"{f.name}-{k:05d}", t, f.name) for k, t in enumerate(items)]
    return rows


def raw_pool(name: str, work: Path):
    """(ids, items, labels, modality) of a pool before embedding."""
    import polars as pl

    from curation_assets.demo import demo_corpus
    from curation_assets.demo.folders import TEXT_CLASSES, image_folder, long_tail, text_corpus

    if name in ("text_demo", "image_demo", "satellite_demo"):
        kind = name.split("_")[0]
        kw = {"text": dict(max_items=12000, seed=0), "image": dict(max_items=6000),
              "satellite": dict(max_items=4000, tile_px=30)}[kind]
        df = demo_corpus(kind, **kw)
        col = "text" if kind == "text" else "image"
        return df["id"].to_list(), df[col].to_list(), df["label"].to_list(), "text" if kind == "text" else "image"
    if name == "image_folder":  # as bench/user_folders.py builds it
        raw = work / "folders" / "image"
        if not raw.exists():
            image_folder(raw, long_tail(10, 450, 45), copies_every=7)
        files = sorted(p for p in raw.rglob("*.png"))
        return ([p.relative_to(raw).as_posix() for p in files], [p.read_bytes() for p in files],
                [p.parent.name for p in files], "image")
    if name == "text_folder":
        raw = work / "folders" / "text"
        if not raw.exists():
            text_corpus(raw, long_tail(len(TEXT_CLASSES), 300, 30), copies_every=7)
        df = pl.read_ndjson(raw / "docs.jsonl")
        return df["id"].to_list(), df["text"].to_list(), df["label"].to_list(), "text"
    if name == "fortunes":
        if not FORTUNES_DIR.is_dir():
            raise FileNotFoundError(f"{FORTUNES_DIR} missing: apt-get install fortunes")
        rows = _fortunes_rows()
        labels = np.array([r[2] for r in rows])
        classes, counts = np.unique(labels, return_counts=True)
        keep_classes = set(classes[counts >= FORTUNES_MIN_CLASS])
        rows = [r for r in rows if r[2] in keep_classes]
        from curation_assets.demo import _stratified_indices

        keep = _stratified_indices(np.array([r[2] for r in rows]), FORTUNES_ITEMS, 0)
        rows = [rows[i] for i in keep]
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], "text"
    raise ValueError(name)


def build_pool(name: str, work: Path) -> dict:
    """Embed (once) and de-duplicate a pool; cached as ``<work>/<name>.npz``."""
    path = work / f"{name}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return {k: z[k] for k in z.files}
    from curation_assets.core.dedup import deduplicate
    from curation_assets.embedders import EfficientNetLite0Embedder, EmbedResult, SentenceTransformerEmbedder

    t0 = time.perf_counter()
    ids, items, labels, modality = raw_pool(name, work)
    emb = SentenceTransformerEmbedder(device="cpu") if modality == "text" else \
        EfficientNetLite0Embedder(image_size=96, device="cpu")
    reuse = work / f"{name}.vectors.npy"  # vectors of these items already computed by the same embedder
    if reuse.exists():
        res = EmbedResult(np.load(reuse))
        check = np.random.default_rng(1).choice(len(items), 24, replace=False)
        again = emb.embed([items[i] for i in check]).vectors
        if res.vectors.shape[0] != len(items) or np.abs(again - res.vectors[check]).max() > 1e-5:
            raise ValueError(f"{reuse} does not hold {emb.name}'s vectors of {name}")
        log(f"{name}: reusing {reuse} (24 random rows re-embedded: max |Δ| "
            f"{np.abs(again - res.vectors[check]).max():.1e})")
    else:
        log(f"{name}: embedding {len(items)} items with {emb.name}")
        res = emb.embed(items)
    ok = res.ok_positions(len(items))
    X = np.ascontiguousarray(res.vectors, dtype=np.float32)
    ids, items, labels = [ids[i] for i in ok], [items[i] for i in ok], [labels[i] for i in ok]
    t1 = time.perf_counter()
    dd = deduplicate(X, ids, emb.dedup_threshold, content_keys=items, seed=0)
    keep = dd.keep
    out = {"X": X[keep], "y": np.array([labels[i] for i in keep]).astype(str),
           "ids": np.array([ids[i] for i in keep]).astype(str),
           "facts": np.array(json.dumps({
               "pool": name, "model": emb.name, "items": len(items) + len(res.failed), "failed": len(res.failed),
               "embedded": len(ok), "vectors": "reused" if reuse.exists() else "embedded here",
               "exact_removed": int(dd.n_exact), "near_removed": int(dd.n_near),
               "rows": int(len(keep)), "dedup_threshold": emb.dedup_threshold,
               "embed_s": round(t1 - t0, 1), "dedup_s": round(time.perf_counter() - t1, 1)}))}
    np.savez(path, **out)
    log(f"{name}: {json.loads(str(out['facts']))}")
    return out


def pool_facts(pool: dict) -> dict:
    f = json.loads(str(pool["facts"]))
    classes, counts = np.unique(pool["y"], return_counts=True)
    f.update(classes=len(classes), largest_class=int(counts.max()), smallest_class=int(counts.min()),
             dim=int(pool["X"].shape[1]))
    return f


# ---------------------------------------------------------------- candidates
@dataclass(frozen=True)
class Candidate:
    per_cluster: tuple[int, ...]  # per_cluster of each level (level 1 relative to the pool, then to the level below)
    steps: int
    alpha: float

    @property
    def name(self) -> str:
        lv = " ÷".join(str(p) for p in self.per_cluster)
        return f"L{len(self.per_cluster)} n/{lv} m={self.steps} α={self.alpha:g}"

    def yaml(self) -> str:
        lines = ["metric: cosine", "levels:"]
        lines += [f"  - {{per_cluster: {p}, resampling_steps: {self.steps}}}" for p in self.per_cluster]
        lines.append(f"sampling: {{fraction: {FRACTION}, strategy: random, alpha: {self.alpha:g}, seed: 0}}")
        return "\n".join(lines)


LEVEL1 = (10, 20, 50)
RATIOS = (4, 10)
STEPS = (0, 10)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
# The recipes bundled in curation.yaml before this study, and the code's default when `levels` is omitted.
BUNDLED = {
    "text (bundled)": Candidate((20, 4, 10), 10, 0.5),
    "image (bundled)": Candidate((20,), 10, 0.5),
    "satellite (bundled)": Candidate((20, 4), 10, 0.5),
    "no levels given (code default)": Candidate((20, 4, 4), 0, 0.0),
}


def trees() -> list[tuple[tuple[int, ...], int]]:
    shapes = [(p,) for p in LEVEL1]
    for p in LEVEL1:
        for r in RATIOS:
            shapes += [(p, r), (p, r, r)]
    shapes.append((20, 4, 10))  # the bundled text recipe's shape
    return [(s, m) for s in dict.fromkeys(shapes) for m in STEPS]


def grid() -> list[Candidate]:
    return [Candidate(s, m, a) for s, m in trees() for a in ALPHAS]


# ---------------------------------------------------------------- curation on one pool
class PoolRunner:
    """Fits trees level by level with the graph's code (``plan_level`` / ``fit_level`` / ``level_seed``, exactly
    what ``hierarchical_kmeans`` does), sharing the lower levels between recipes of one seed."""

    def __init__(self, pool: dict):
        from curation_assets.core import label_balance

        self.X, self.y = np.ascontiguousarray(pool["X"], dtype=np.float32), pool["y"]
        self.n = len(self.X)
        self.target = max(1, round(self.n * FRACTION))  # SamplingConfig.target_for
        self._lb = label_balance
        self._levels: dict = {}

    def H(self, idx: np.ndarray) -> float:
        return float(self._lb(self.y[idx], self.y)["normalized_entropy"])

    def random_baseline(self, draws: int = RANDOM_DRAWS, seed0: int = 10**6) -> np.ndarray:
        from curation_assets.evaluation import random_selection

        return np.array([self.H(random_selection(self.n, self.target, seed0 + s)) for s in range(draws)])

    def tree(self, shape: tuple[int, ...], steps: int, seed: int):
        from curation_assets.core import HierarchicalClustering, LevelSpec, fit_level, level_seed, plan_level

        fitted, inp = [], self.X
        for t in range(1, len(shape) + 1):
            key = (seed, steps, shape[:t])
            if key not in self._levels:
                spec, _ = plan_level(LevelSpec(per_cluster=shape[t - 1], resampling_steps=steps), t, inp.shape[0])
                self._levels[key] = None if spec is None else \
                    fit_level(inp, spec, seed=level_seed(seed, t), metric=METRIC)
            level = self._levels[key]
            if level is None:
                break
            fitted.append(level)
            inp = level.centroids
        return HierarchicalClustering(fitted, n_points=self.n)

    def forget(self):
        self._levels.clear()

    def select(self, cand: Candidate, seed: int) -> tuple[np.ndarray, int]:
        from curation_assets.core import hierarchical_sampling

        h = self.tree(cand.per_cluster, cand.steps, seed)
        return hierarchical_sampling(h, self.target, strategy="random", seed=seed, alpha=cand.alpha), h.n_levels


def self_check():
    """The level-sharing runner draws exactly what ``hierarchical_kmeans`` + ``hierarchical_sampling`` draw."""
    from curation_assets.core import LevelSpec, hierarchical_kmeans, hierarchical_sampling

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    runner = PoolRunner({"X": X, "y": np.array(["a", "b", "c"])[rng.integers(0, 3, 3000)]})
    for cand in (Candidate((10, 4, 4), 10, 0.5), Candidate((20, 10), 0, 0.0), Candidate((50, 10, 10), 10, 0.25)):
        a, _ = runner.select(cand, 3)
        h = hierarchical_kmeans(X, [LevelSpec(per_cluster=p, resampling_steps=cand.steps) for p in cand.per_cluster],
                                seed=3, metric=METRIC)
        b = hierarchical_sampling(h, runner.target, strategy="random", seed=3, alpha=cand.alpha)
        assert np.array_equal(a, b), cand
    log("self-check: shared-level runner == hierarchical_kmeans + hierarchical_sampling")


# ---------------------------------------------------------------- stages
def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def run_seeds(pname: str, pool: dict, cands: list[Candidate], seeds: list[int], st: dict, stage: str, path: Path,
              probe_seeds: int = 0):
    """st[stage][cand.name][str(seed)] = {"H": …, "levels": …, ("acc": …)}; resumable (skips what is stored).
    The linear probe runs on the first ``probe_seeds`` seeds only (it costs more than the curation)."""
    shapes = sorted({(c.per_cluster, c.steps) for c in cands})
    runner = PoolRunner(pool)
    task = make_task(pool) if probe_seeds else None
    probed = set(seeds[:probe_seeds])
    ps = st.setdefault(stage, {})
    t0 = time.perf_counter()
    for seed in seeds:
        todo = [c for c in cands if str(seed) not in ps.get(c.name, {})]
        if not todo:
            continue
        for shape, steps in shapes:  # fit each tree once per seed (lower levels shared), draw all its alphas
            for c in (c for c in todo if (c.per_cluster, c.steps) == (shape, steps)):
                idx, levels = runner.select(c, seed)
                rec = {"H": runner.H(idx), "levels": levels}
                if seed in probed:
                    rec["acc"] = probe_acc(task, idx)
                ps.setdefault(c.name, {})[str(seed)] = rec
        runner.forget()
        save_json(path, st)
        log(f"{pname} {stage}: seed {seed} done ({len(todo)} candidates), {time.perf_counter() - t0:.0f} s so far")


def make_task(pool: dict):
    from curation_assets.evaluation import Task

    return Task.of(pool["X"], pool["y"].astype(object), per_class=40, max_share=0.2, seed=0)  # benchmark defaults


def probe_acc(task, idx: np.ndarray) -> float:
    from curation_assets.evaluation import _probe_scores

    train = idx[~task.test[idx]]
    test = np.flatnonzero(task.test)
    y = np.asarray(task.labels).astype(str)
    return float(_probe_scores(task.X[train], y[train], task.X[test], y[test])["linear_balanced_accuracy"])


def baseline(pool: dict, st: dict, path: Path, probe_seeds: list[int]):
    """Random subsets of the pool: RANDOM_DRAWS draws for H; for the probe, one random draw per confirmation seed."""
    from curation_assets.evaluation import random_selection

    b = st.setdefault("baseline", {})
    runner = PoolRunner(pool)
    if "H" not in b:
        b["H"] = runner.random_baseline().tolist()
    if "oracle_H" not in b:  # the label-aware reference (evaluation.oracle_balanced): the most balance could give
        from curation_assets.evaluation import oracle_balanced

        b["oracle_H"] = [runner.H(oracle_balanced(runner.y.astype(object), runner.target, s)) for s in range(20)]
    if probe_seeds and len(b.get("acc", [])) < len(probe_seeds):
        task = make_task(pool)
        b["acc"] = [probe_acc(task, random_selection(runner.n, runner.target, 2 * 10**6 + s)) for s in probe_seeds]
    b["target"], b["n"] = runner.target, runner.n
    save_json(path, st)


def margins(runs: dict, base: dict, key: str = "H") -> dict:
    """Per pool and candidate: mean margin over random, its standard error, seeds (runs[pool][cand][seed])."""
    out = {}
    for pname, cands in runs.items():
        rb = np.asarray(base[pname][key], dtype=float)
        for cname, seeds in cands.items():
            v = np.array([r[key] for r in seeds.values() if key in r], dtype=float)
            if len(v) == 0:
                continue
            se = np.sqrt((v.std(ddof=1) ** 2 / len(v) if len(v) > 1 else 0.0) + rb.var(ddof=1) / len(rb))
            out.setdefault(cname, {})[pname] = {"mean": float(v.mean() - rb.mean()), "se": float(se),
                                                "seeds": len(v), "value": float(v.mean()),
                                                "levels_used": sorted({r["levels"] for r in seeds.values()})}
    return out


TIE_Z = 2.0  # two margins closer than TIE_Z standard errors of their difference are a tie


def worst(m: dict, pools: list[str]) -> tuple[float, str]:
    """A candidate's smallest per-pool mean margin, and that pool."""
    return min((m[p]["mean"], p) for p in pools)


def pick_strict(m: dict, pools: list[str]) -> str:
    """The candidate with the best worst-pool margin (ties broken by the mean margin)."""
    return max(m, key=lambda c: (worst(m[c], pools)[0], np.mean([m[c][p]["mean"] for p in pools])))


def pick_tie_aware(m: dict, pools: list[str], cands: list[str] | None = None) -> str:
    """Leximin within the seed noise: keep the candidates whose worst-pool margin is within TIE_Z standard errors of
    the best worst-pool margin; among them the same test on the second-worst pool, and so on; the mean margin
    over the pools breaks a remaining tie. With no ties it is :func:`pick_strict`."""
    live = list(cands if cands is not None else m)
    for k in range(len(pools)):
        kth = {c: sorted((m[c][p] for p in pools), key=lambda d: d["mean"])[k] for c in live}
        top = max(live, key=lambda c: kth[c]["mean"])
        live = [c for c in live
                if kth[c]["mean"] >= kth[top]["mean"] - TIE_Z * np.hypot(kth[top]["se"], kth[c]["se"])]
        if len(live) == 1:
            break
    return max(live, key=lambda c: np.mean([m[c][p]["mean"] for p in pools]))


def rank_tie_aware(m: dict, pools: list[str], n: int) -> list[str]:
    left, out = list(m), []
    while left and len(out) < n:
        out.append(pick_tie_aware(m, pools, left))
        left.remove(out[-1])
    return out


def lopo(m: dict, pools: list[str]) -> list[dict]:
    """Leave one pool out: the pick on the other pools (strict and tie-aware) and its margin on the held-out pool."""
    rows = []
    for held in pools:
        others = [p for p in pools if p != held]
        row = {"held_out": held}
        for rule, pick in (("strict", pick_strict(m, others)), ("tie_aware", pick_tie_aware(m, others))):
            w, wp = worst(m[pick], others)
            row[rule] = {"pick": pick, "worst_on_others": w, "worst_other_pool": wp,
                         "held_out_margin": m[pick][held]["mean"], "held_out_se": m[pick][held]["se"]}
        rows.append(row)
    return rows


def pooled(state: dict, names: list[str]) -> dict:
    """Screening and confirmation seeds together, for the finalists."""
    out = {}
    for p in state["confirm"]:
        out[p] = {c: {**state["screen"].get(p, {}).get(c, {}), **seeds} for c, seeds in state["confirm"][p].items()
                  if c in names}
    return out


def cand_by_name() -> dict[str, Candidate]:
    out = {c.name: c for c in grid()}
    out.update({c.name: c for c in BUNDLED.values()})
    return out


# ---------------------------------------------------------------- report
def fmt(d: dict | None) -> str:
    return "–" if d is None else f"{d['mean']:+.3f} ± {d['se']:.3f}"


def mean_over(m: dict, pools: list[str]) -> float:
    return float(np.mean([m[p]["mean"] for p in pools]))


def margin_table(m: dict, pools: list[str], cands: list[str], extra: dict | None = None) -> list[str]:
    extra = extra or {}
    head = "| candidate | worst pool | worst margin | mean over pools | " + " | ".join(pools) + " |" + \
        "".join(f" {k} |" for k in extra)
    lines = [head, "|---|---|---:|---:|" + "---:|" * (len(pools) + len(extra))]
    tags = {v.name: k for k, v in BUNDLED.items()}
    for c in cands:
        w, wp = worst(m[c], pools)
        tag = f" [{tags[c]}]" if c in tags else ""
        cells = " | ".join(fmt(m[c].get(p)) for p in pools) + " |" + "".join(f" {v[c]} |" for v in extra.values())
        lines.append(f"| {c}{tag} | {wp} | {w:+.3f} ± {m[c][wp]['se']:.3f} | {mean_over(m[c], pools):+.3f} | {cells}")
    return lines


def lopo_table(rows: list[dict]) -> list[str]:
    lines = ["| held-out pool | strict pick (best worst margin on the others) | its worst margin on the others | "
             "held-out margin | tie-aware pick | its worst margin on the others | held-out margin |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in rows:
        s, t = r["strict"], r["tie_aware"]
        lines.append(f"| {r['held_out']} | {s['pick']} | {s['worst_on_others']:+.3f} ({s['worst_other_pool']}) | "
                     f"{s['held_out_margin']:+.3f} ± {s['held_out_se']:.3f} | {t['pick']} | "
                     f"{t['worst_on_others']:+.3f} ({t['worst_other_pool']}) | "
                     f"{t['held_out_margin']:+.3f} ± {t['held_out_se']:.3f} |")
    return lines


def report(state: dict, pools: list[str]) -> tuple[str, dict]:
    base, facts = state["baselines"], state["pools"]
    ms = margins(state["screen"], base)
    summary: dict = {"screen_margins": ms, "screen_lopo": lopo(ms, pools)}
    out = ["## Pools (after dedup)", "",
           "| pool | model | items | removed (exact / near) | rows | classes | largest / smallest class "
           f"| subset (20 %) | random H (mean ± sd, {RANDOM_DRAWS} draws) | oracle H (uses labels) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in pools:
        f, rb = facts[p], np.asarray(base[p]["H"])
        out.append(f"| {p} | {f['model'].split('|')[0][:48]} | {f['items']} | {f['exact_removed']} / "
                   f"{f['near_removed']} | {f['rows']} | {f['classes']} | {f['largest_class']} / "
                   f"{f['smallest_class']} | {base[p]['target']} | {rb.mean():.3f} ± {rb.std(ddof=1):.3f} | "
                   f"{np.mean(base[p].get('oracle_H', [np.nan])):.3f} |")
    n_screen = min(v["seeds"] for c in ms.values() for v in c.values())
    ranked = sorted(ms, key=lambda c: -worst(ms[c], pools)[0])
    tie = rank_tie_aware(ms, pools, 10)
    bundled = [v.name for v in BUNDLED.values()]
    out += ["", f"## Screening: {len(ms)} candidates × {n_screen} seeds; margin of normalised label entropy over "
            "random (mean ± s.e.)", "", "Top 15 by worst-pool margin (strict):", ""]
    out += margin_table(ms, pools, ranked[:15])
    out += ["", f"Top 10 by the tie-aware rule (leximin: ties = within {TIE_Z:g} s.e. of the difference):", ""]
    out += margin_table(ms, pools, tie)
    out += ["", "The recipes bundled before this study:", ""]
    out += margin_table(ms, pools, bundled)
    out += ["", "## Leave-one-pool-out (screening seeds)", "", *lopo_table(summary["screen_lopo"])]
    if state.get("confirm") and all(p in state["confirm"] for p in pools):
        fin = state["finalists"]
        mc = margins({p: {c: v for c, v in state["confirm"][p].items() if c in fin} for p in pools}, base)
        mp = margins(pooled(state, fin), base)
        ma = margins(state["confirm"], base, "acc")
        n_conf = min(v["seeds"] for c in mc.values() for v in c.values())
        n_pool = min(v["seeds"] for c in mp.values() for v in c.values())
        n_acc = min(v["seeds"] for c in ma.values() for v in c.values())
        order = sorted(mp, key=lambda c: -worst(mp[c], pools)[0])
        fresh_worst = {c: f"{worst(mc[c], pools)[0]:+.3f} ({worst(mc[c], pools)[1]})" for c in order}
        out += ["", f"## Finalists: {n_pool} seeds each ({n_screen} screening + {n_conf} fresh); label-entropy margin "
                "over random (mean ± s.e.)", ""]
        out += margin_table(mp, pools, order, {f"worst on the {n_conf} fresh seeds only": fresh_worst})
        out += ["", f"## Finalists: linear-probe balanced-accuracy margin over random (first {n_acc} fresh seeds vs "
                f"{RANDOM_PROBES} random draws; benchmark evaluation split; mean ± s.e.)", ""]
        out += margin_table(ma, pools, [c for c in order if c in ma])
        rows = lopo(mp, pools)
        out += ["", f"## Leave-one-pool-out among the finalists ({n_pool} seeds)", "", *lopo_table(rows)]
        strict, chosen = pick_strict(mp, pools), pick_tie_aware(mp, pools)
        fresh_strict, fresh_tie = pick_strict(mc, pools), pick_tie_aware(mc, pools)
        w, wp = worst(mp[chosen], pools)
        ws, wsp = worst(mp[strict], pools)
        out += ["", f"Strict best worst-pool margin: **{strict}**, {ws:+.3f} ± {mp[strict][wsp]['se']:.3f} ({wsp}), "
                f"mean over pools {mean_over(mp[strict], pools):+.3f}.",
                f"Tie-aware pick: **{chosen}**, worst-pool margin {w:+.3f} ± {mp[chosen][wp]['se']:.3f} ({wp}), "
                f"mean over pools {mean_over(mp[chosen], pools):+.3f}.",
                f"On the {n_conf} fresh seeds alone: strict {fresh_strict}; tie-aware {fresh_tie}.",
                "", "```yaml", cand_by_name()[chosen].yaml(), "```"]
        summary.update({"finalists": fin, "confirm_fresh_margins": mc, "finalist_margins": mp,
                        "finalist_probe_margins": ma, "finalist_lopo": rows,
                        "strict_pick": {"name": strict, "worst_margin": ws, "worst_pool": wsp,
                                        "worst_se": mp[strict][wsp]["se"]},
                        "chosen": {"name": chosen, **asdict(cand_by_name()[chosen]), "worst_pool": wp,
                                   "worst_margin": w, "worst_se": mp[chosen][wp]["se"],
                                   "mean_over_pools": mean_over(mp[chosen], pools),
                                   "yaml": cand_by_name()[chosen].yaml()},
                        "fresh_only": {"strict": fresh_strict, "tie_aware": fresh_tie}})
    return "\n".join(out), summary


# ---------------------------------------------------------------- main
def load_state(work: Path, pools: list[str]) -> dict:
    """Every pool's state file (``<work>/state/<pool>.json``: facts, baseline, screen, confirm), assembled."""
    state = {"pools": {}, "baselines": {}, "screen": {}, "confirm": {}}
    for p in pools:
        s = load_json(work / "state" / f"{p}.json")
        for key, dest in (("facts", "pools"), ("baseline", "baselines"), ("screen", "screen"), ("confirm", "confirm")):
            if key in s:
                state[dest][p] = s[key]
    return state


def choose_finalists(state: dict, pools: list[str], top: int) -> list[str]:
    ms = margins(state["screen"], state["baselines"])
    ranked = sorted(ms, key=lambda c: -worst(ms[c], pools)[0])
    fin = ranked[:top] + rank_tie_aware(ms, pools, top) + [r[k]["pick"] for r in lopo(ms, pools) for k in
                                                          ("strict", "tie_aware")] + [c.name for c in BUNDLED.values()]
    return list(dict.fromkeys(fin))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/tune-defaults")
    ap.add_argument("--stage", default="all", choices=["all", "embed", "screen", "finalists", "confirm", "report"])
    ap.add_argument("--pools", nargs="+", default=list(POOLS),
                    help="pools this process runs (stages embed/screen/confirm)")
    ap.add_argument("--report-pools", nargs="+", default=None, help="pools of the report (default: --pools)")
    ap.add_argument("--screen-seeds", type=int, default=10)
    ap.add_argument("--confirm-seeds", type=int, default=10)
    ap.add_argument("--probe-seeds", type=int, default=3, help="confirmation seeds that also run the probe")
    ap.add_argument("--finalists", type=int, default=6)
    ap.add_argument("--out", default=str(REPO / "bench/results/tune_defaults.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.work)
    (work / "state").mkdir(parents=True, exist_ok=True)
    pools = {}
    for p in args.pools:
        try:
            pools[p] = build_pool(p, work)
        except FileNotFoundError as e:
            log(f"skipping pool {p}: {e}")
            continue
        path = work / "state" / f"{p}.json"
        st = load_json(path)
        st["facts"] = pool_facts(pools[p])
        save_json(path, st)
    if args.stage == "embed":
        return
    if args.stage in ("all", "screen"):
        self_check()
        seeds = list(range(SCREEN_SEED0, SCREEN_SEED0 + args.screen_seeds))
        cands = list(cand_by_name().values())
        log(f"screening {len(cands)} candidates ({len(trees())} trees) on {list(pools)} × {len(seeds)} seeds")
        for p, pool in pools.items():
            path = work / "state" / f"{p}.json"
            st = load_json(path)
            baseline(pool, st, path, [])
            run_seeds(p, pool, cands, seeds, st, "screen", path)
    if args.stage in ("all", "finalists", "confirm"):
        fin_path = work / "finalists.json"
        if not fin_path.exists():  # chosen once, from every pool's screening
            names = args.report_pools or list(pools)
            fin = choose_finalists(load_state(work, names), names, args.finalists)
            save_json(fin_path, {"finalists": fin, "from_pools": names})
            log(f"finalists: {fin}")
        if args.stage == "finalists":
            return
        fin = load_json(fin_path)["finalists"]
        seeds = list(range(CONFIRM_SEED0, CONFIRM_SEED0 + args.confirm_seeds))
        log(f"confirming {len(fin)} finalists on {len(seeds)} fresh seeds (with probes) on {list(pools)}: {fin}")
        byname = cand_by_name()
        for p, pool in pools.items():
            path = work / "state" / f"{p}.json"
            st = load_json(path)
            baseline(pool, st, path, seeds[: max(RANDOM_PROBES, args.probe_seeds)])
            run_seeds(p, pool, [byname[c] for c in fin], seeds, st, "confirm", path, args.probe_seeds)
    if args.stage not in ("all", "report"):
        return
    names = [p for p in (args.report_pools or list(pools)) if (work / "state" / f"{p}.json").exists()]
    state = load_state(work, names)
    fin_path = work / "finalists.json"
    if fin_path.exists():
        state["finalists"] = load_json(fin_path)["finalists"]
    text, summary = report(state, names)
    print(text)
    md = Path(args.out).with_suffix(".md")
    md.write_text("# bench/tune_defaults.py\n\n" + text + "\n")
    base = state["baselines"]
    summary = {"pools": state["pools"], "fraction": FRACTION, "metric": METRIC, "random_draws": RANDOM_DRAWS,
               "tie_z": TIE_Z,
               "grid": {"level1_per_cluster": LEVEL1, "ratios": RATIOS, "resampling_steps": STEPS, "alphas": ALPHAS},
               "bundled": {k: asdict(v) | {"name": v.name} for k, v in BUNDLED.items()},
               "candidates": {c.name: asdict(c) for c in cand_by_name().values()},
               "baselines": {p: {"H_mean": float(np.mean(b["H"])), "H_sd": float(np.std(b["H"], ddof=1)),
                                 "oracle_H_mean": float(np.mean(b.get("oracle_H", [np.nan]))), "acc": b.get("acc"),
                                 "target": b["target"], "n": b["n"]} for p, b in base.items()},
               **summary,
               "raw": {"screen": state["screen"], "confirm": state.get("confirm"),
                       "random_H": {p: b["H"] for p, b in base.items()}}}
    Path(args.out).write_text(json.dumps(summary, indent=1))
    log(f"written {args.out} and {md}")


if __name__ == "__main__":
    sys.exit(main())
