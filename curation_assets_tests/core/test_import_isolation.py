import subprocess
import sys


def run_python(code: str) -> None:
    """Run ``code`` in a fresh interpreter; it exits non-zero when the import rule it checks is broken."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_core_imports_no_dagster_torch_or_sentence_transformers():
    run_python("import sys, curation_assets.core, curation_assets.core.synthetic; "
               "bad = [m for m in ('dagster', 'torch', 'sentence_transformers') if m in sys.modules]; "
               "print(bad); sys.exit(1 if bad else 0)")


def test_the_cpu_path_never_imports_torch():
    run_python("import sys, numpy as np; from curation_assets.core import LevelSpec, hierarchical_kmeans; "
               "X = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32); "
               "hierarchical_kmeans(X, [LevelSpec(20, 2, 10)], device='cpu'); sys.exit('torch' in sys.modules)")


def test_clustering_above_eight_dimensions_imports_no_scipy():
    # scipy's k-d trees serve only dimension <= 8: a first call in a fresh process pays for nothing else.
    run_python("import sys, numpy as np; from curation_assets.core import LevelSpec, hierarchical_kmeans; "
               "X = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32); "
               "hierarchical_kmeans(X, [LevelSpec(30, 2, 10, n_splits=2), LevelSpec(5)]); "
               "bad = [m for m in sys.modules if m.startswith('scipy')]; print(bad); sys.exit(bool(bad))")


def test_device_auto_without_a_visible_gpu_imports_no_torch():
    # The graph's default device is "auto": on a machine whose kernel shows no NVIDIA GPU, asking costs nothing.
    import pytest

    from curation_assets.core.devices import _nvidia_gpu_visible

    if _nvidia_gpu_visible() or not sys.platform.startswith("linux"):
        pytest.skip("a GPU is visible (or not Linux): auto must ask torch")
    run_python("import sys; from curation_assets.core import resolve_device; "
               "assert resolve_device('auto') == 'cpu'; sys.exit('torch' in sys.modules)")
