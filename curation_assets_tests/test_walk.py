"""Walk tests of the house: a setting travels one road, and a new modality needs no code."""

import ast
from pathlib import Path

import polars as pl

import curation_assets
from curation_assets_tests.graph._helpers import HashEmbedder, assert_data_checks_pass, curate

PACKAGE = Path(curation_assets.__file__).parent


def modules_naming(identifier: str) -> set[str]:
    """Package modules whose code (not docstrings or comments) names ``identifier``."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
            {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | \
            {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in n.args + n.kwonlyargs} | \
            {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        if identifier in names:
            found.add(path.relative_to(PACKAGE).as_posix())
    return found


def test_target_size_travels_config_to_balanced_subset_to_core_sampling_only():
    assert modules_naming("target_size") <= {"config.py", "graph/curate.py", "core/sampling.py", "core/__init__.py"}


def test_a_new_modality_is_one_yaml_key(small_config, data_root):
    small_config.write_text(small_config.read_text() + """
  reviews:
    source: {kind: files}
    embedder: {kind: sentence_transformer}
    levels: [{per_cluster: 10}]
    sampling: {fraction: 0.5}
    benchmark: {seeds: [0]}
""")
    raw = data_root / "raw/reviews"
    raw.mkdir(parents=True)
    pl.DataFrame({"id": [f"r{i}" for i in range(80)], "text": [f"review {i} of product {i % 5}" for i in range(80)],
                  "label": [f"p{i % 5}" for i in range(80)]}).write_parquet(raw / "reviews.parquet")
    result = curate(small_config, "reviews", embedder=HashEmbedder())
    assert len(pl.read_parquet(data_root / "curated/reviews/subset.parquet")) == 40
    assert_data_checks_pass(result)


def test_every_function_fits_on_a_screen():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not long, long
