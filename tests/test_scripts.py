"""The scripts under scripts/ use the rlbase of the checkout they sit in, also when the venv has another checkout's
rlbase installed (``pip install -e``): a worktree or a second clone that shares one venv runs, and writes into, its
own tree, never the installed one's."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_script_that_imports_rlbase_puts_its_checkout_first():
    for script in sorted((ROOT / "scripts").glob("*.py")):
        text = script.read_text()
        first = re.search(r"^\s*(from|import) rlbase\b", text, re.M)  # at the top or inside a function
        if first is None:
            continue
        shim = text.find("sys.path.insert(0, str(Path(__file__).resolve().parents[1]))")
        assert 0 <= shim < first.start(), f"{script.name}: imports rlbase before putting its own checkout on sys.path"


def test_a_script_in_another_checkout_writes_into_that_checkout(tmp_path):
    # a copy of the package and the scripts, as a second clone would have them; this venv's rlbase is ROOT's
    other = tmp_path / "clone"
    shutil.copytree(ROOT / "rlbase", other / "rlbase", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts", other / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    (other / "benchmarks").mkdir()
    out = tmp_path / "page.md"  # never the real docs/benchmarks.md, even if the script used the wrong tree
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(other / "scripts" / "benchmarks.py"), "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = out.read_text()
    # built from the clone's empty benchmarks/, not from this checkout's protocols
    assert text.startswith("# Benchmarks") and "offpolicy_1m" not in text and "offpolicy_1m" in \
        (ROOT / "docs" / "benchmarks.md").read_text()
