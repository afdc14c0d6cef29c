#!/usr/bin/env bash
# The README's first command: set up, then materialize the whole curation graph for every modality
# on the bundled demo data (results under data/, history under .dagster_home/ for `dagster dev`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
export DAGSTER_HOME="${DAGSTER_HOME:-$(pwd)/.dagster_home}" HF_HUB_OFFLINE=1
source .venv/bin/activate
for modality in simulated text image satellite; do
  echo "== curating partition: $modality"
  dg launch --job curate --partition "$modality"
done
echo "done: subsets in data/curated/<modality>/subset.parquet, datasets in data/datasets/<modality>/, scores in data/benchmarks/<modality>/scores.parquet"
