"""Golden files: each tests/golden/<case>/ holds cluster objects and the exact haproxy.cfg they give.

Every expected file must also pass the real `haproxy -c`. To regenerate after an intended
change: UPDATE_GOLDEN=1 pytest tests/golden, then review the diff like code.
"""
import os
import shutil
import subprocess

import pytest

from lbsync import model, render, settings as settings_mod, sync
from lbsync.source import FileSource

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES = sorted(d for d in os.listdir(HERE) if os.path.isfile(os.path.join(HERE, d, "cluster.yaml")))
BASE = dict(http_bind="127.0.0.1:18080", https_bind="127.0.0.1:18443", stats_bind="127.0.0.1:18936",
            tcp_bind_address="127.0.0.1", tls_cert=os.path.join(HERE, "_tls", "lb.pem"),
            haproxy_log="stdout", haproxy_version="2.6", haproxy_exporter="false")


def render_case(case: str) -> str:
    extra = {}
    path = os.path.join(HERE, case, "settings.yaml")
    if os.path.exists(path):
        extra = settings_mod.from_file(path)
    s = settings_mod.Settings(**{**BASE, **extra})
    topology = model.build(FileSource(os.path.join(HERE, case, "cluster.yaml")).fetch(), sync.options_from(s))
    text = render.Renderer(sync.frame_from(s), template=s.template, errors_dir=s.errors_dir).render(topology)
    return text.replace(ROOT, "@ROOT@")


@pytest.mark.parametrize("case", CASES)
def test_golden_render(case):
    got = render_case(case)
    expected_path = os.path.join(HERE, case, "expected.cfg")
    if os.environ.get("UPDATE_GOLDEN"):
        with open(expected_path, "w") as f:
            f.write(got)
    with open(expected_path) as f:
        assert got == f.read()


@pytest.mark.parametrize("case", CASES)
def test_golden_expected_passes_haproxy_check(case, tmp_path):
    if not shutil.which("haproxy"):
        pytest.skip("haproxy binary not installed")
    with open(os.path.join(HERE, case, "expected.cfg")) as f:
        text = f.read().replace("@ROOT@", ROOT)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    out = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[WARNING]" not in out.stdout + out.stderr, out.stdout + out.stderr
