"""Static guards: Python 3.9 compatibility (vermin) and the one-way module layering (import-linter)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name):
    path = shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        pytest.skip(f"{name} is not installed (pip install -e .[test])")
    return path


def test_code_runs_on_python_3_9():
    out = subprocess.run([_tool("vermin"), "--no-tips", "--violations", "-t=3.9-", "lbsync"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_module_layering_points_one_way():
    out = subprocess.run([_tool("lint-imports")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and " 0 broken" in out.stdout, out.stdout + out.stderr
    assert "Flow points one way" in out.stdout and "Inside kube" in out.stdout  # every contract was read
