import subprocess
import sys


def test_core_imports_no_dagster_torch_or_sentence_transformers():
    code = ("import sys, curation_assets.core, curation_assets.core.synthetic; "
            "bad = [m for m in ('dagster', 'torch', 'sentence_transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
