"""A tiny tmpfs for disk-full and read-only tests (needs root and mount rights, else the test skips)."""
import contextlib
import subprocess

import pytest


@contextlib.contextmanager
def tmpfs(path, size="64k"):
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
