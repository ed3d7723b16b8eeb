"""lbsync's /metrics as Prometheus reads it: prometheus_client's own parser, process metrics, negotiation."""
import os
import shutil
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lbsync import metrics as metrics_mod, model, settings as settings_mod, sync
from lbsync.source import FileSource
from tests.helpers.backends import free_port
from tests.helpers.lbsync_proc import ROOT, LbsyncProcess

EXAMPLE = os.path.join(ROOT, "examples", "cluster.yaml")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy binary not installed")]


def get(url, accept=None):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with opener.open(req, timeout=3) as r:
        return r.headers["Content-Type"], r.read().decode()


@pytest.fixture
def daemon(tmp_path):
    port = free_port()
    args = ["--source", EXAMPLE, "--haproxy-config",
            str(tmp_path / "haproxy.cfg"), "--interval", "0.3", "--http-bind", "127.0.0.1:18080",
            "--metrics-bind", f"127.0.0.1:{port}"]
    with LbsyncProcess(args) as d:
        d.event("config.applied")
        d.url = f"http://127.0.0.1:{port}/metrics"
        yield d


def samples(text):
    return {s.name: s for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def test_metrics_parse_with_prometheus_client_with_the_lbsync_names_types_and_help(daemon):
    ctype, text = get(daemon.url)
    assert ctype.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("lbsync_syncs_total", "lbsync_api_requests_total", "lbsync_sync_duration_seconds",
                 "lbsync_last_success_timestamp_seconds", "lbsync_backends", "lbsync_servers", "lbsync_problems",
                 "lbsync_ready"):  # every one a successful pass sets
        kind, help_text, _ = metrics_mod.DEFINITIONS[name]
        family = families[name[:-len("_total")] if kind == "counter" else name]
        assert family.type == kind and family.documentation == help_text
    got = samples(text)
    example = model.build(FileSource(EXAMPLE).fetch(), sync.options_from(settings_mod.Settings(source=EXAMPLE)))
    assert got["lbsync_backends"].value == len(example.backends) > 0
    assert got["lbsync_servers"].value == example.server_count > 0
    assert got["lbsync_sync_duration_seconds_count"].value >= 1


def test_process_metrics_describe_the_lbsync_process_itself(daemon):
    got = samples(get(daemon.url)[1])
    with open(f"/proc/{daemon.proc.pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    assert 0.5 * rss < got["process_resident_memory_bytes"].value < 2 * rss
    assert got["process_open_fds"].value == pytest.approx(len(os.listdir(f"/proc/{daemon.proc.pid}/fd")), abs=5)
    assert got["process_cpu_seconds_total"].value > 0


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(daemon):
    ctype, text = get(daemon.url, accept="application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text") and text.endswith("# EOF\n")
