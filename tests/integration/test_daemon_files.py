"""The daemon on a cluster file: signals, settings reload, file watching, metrics, health, logs."""
import json
import os
import shutil
import signal
import time

import pytest

from tests.helpers.backends import free_port
from tests.helpers.lbsync_proc import ROOT, LbsyncProcess, http, parse_prometheus

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy binary not installed")]
EXAMPLE = os.path.join(ROOT, "examples", "cluster.yaml")


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "cluster.yaml")
    shutil.copytree(os.path.join(ROOT, "templates"), tmp_path / "templates")
    return tmp_path


def daemon(workdir, *extra, metrics=None):
    args = ["--source", str(workdir / "cluster.yaml"), "--haproxy-config", str(workdir / "haproxy.cfg"),
            "--interval", "0.3", "--http-bind", "127.0.0.1:18080",
            "--template", str(workdir / "templates" / "haproxy.cfg.j2"), *extra]
    if metrics:
        args += ["--metrics-bind", f"127.0.0.1:{metrics}"]
    return LbsyncProcess(args)


def test_sigterm_stops_the_daemon_within_a_second(workdir):
    with daemon(workdir) as d:
        d.event("config.applied")
        started = time.monotonic()
        d.signal(signal.SIGTERM)
        d.proc.wait(5)
        assert time.monotonic() - started < 1.0
        assert d.proc.returncode == 0
        d.event("daemon.stopped")


def test_cluster_file_change_is_applied_on_the_next_poll(workdir):
    with daemon(workdir) as d:
        d.event("config.applied")
        text = (workdir / "cluster.yaml").read_text().replace("10.2.18.8", "10.2.18.99")
        (workdir / "cluster.yaml").write_text(text)
        mark = d.mark
        d.event("config.applied", after=mark, timeout=5)
        assert "10.2.18.99:8080" in (workdir / "haproxy.cfg").read_text()


def test_template_change_triggers_a_sync_at_once(workdir):
    with daemon(workdir, "--interval", "3600") as d:
        d.event("config.applied")
        mark = d.mark
        tpl = workdir / "templates" / "haproxy.cfg.j2"
        tpl.write_text(tpl.read_text().replace("Do not edit", "Do not edit (watched)"))
        d.event("config.applied", after=mark, timeout=5)
        assert "Do not edit (watched)" in (workdir / "haproxy.cfg").read_text()


def test_sighup_rereads_the_settings_file_and_syncs(workdir):
    conf = workdir / "lbsync.yaml"
    conf.write_text("http_bind: 127.0.0.1:18080\n")
    with daemon(workdir, "--config", str(conf), "--interval", "3600") as d:
        d.event("config.applied")
        conf.write_text("http_bind: 127.0.0.1:18081\n")
        # the flag given on the command line still wins over the file...
        mark = d.mark
        d.signal(signal.SIGHUP)
        d.event("settings.reloaded", after=mark)
        conf.write_text("http_bind: 127.0.0.1:18081\nstats_bind: 127.0.0.1:18937\n")
        mark = d.mark
        d.signal(signal.SIGHUP)
        d.event("config.applied", after=mark)
        text = (workdir / "haproxy.cfg").read_text()
        assert "bind 127.0.0.1:18937" in text and "bind 127.0.0.1:18080" in text


def test_bad_settings_on_sighup_keep_the_old_ones_running(workdir):
    conf = workdir / "lbsync.yaml"
    conf.write_text("stats_bind: 127.0.0.1:18936\n")
    with daemon(workdir, "--config", str(conf), "--interval", "3600") as d:
        d.event("config.applied")
        conf.write_text("stats_bind: [oops\n")
        mark = d.mark
        d.signal(signal.SIGHUP)
        failed = d.event("sync.failed", after=mark)
        assert "lbsync.yaml" in failed["error"]
        assert d.proc.poll() is None  # still running on the old settings


def test_metrics_healthz_and_readyz(workdir):
    port = free_port()
    with daemon(workdir, metrics=port) as d:
        d.event("config.applied")
        status, body = http(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        values = parse_prometheus(body)
        assert values['lbsync_syncs_total{result="changed"}'] >= 1
        assert values["lbsync_backends"] == 6 and values["lbsync_servers"] == 12
        assert values["lbsync_last_success_timestamp_seconds"] > time.time() - 60
        assert http(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        assert http(f"http://127.0.0.1:{port}/readyz")[0] == 200
        # a source that breaks makes the daemon unready after a few failed passes, and ready again after
        good = (workdir / "cluster.yaml").read_text()
        (workdir / "cluster.yaml").write_text("items: [broken\n")
        deadline = time.monotonic() + 10
        while http(f"http://127.0.0.1:{port}/readyz")[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        status, body = http(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and "failed in a row" in body
        assert d.count("sync.failed") == 1  # logged once per state change, not per retry
        (workdir / "cluster.yaml").write_text(good)
        d.event("sync.recovered", timeout=15)
        assert http(f"http://127.0.0.1:{port}/readyz")[0] == 200


def test_json_logs_are_one_object_per_line_with_fields(workdir):
    with daemon(workdir) as d:
        applied = d.event("config.applied")
        d.stop()
    for line in d.raw:
        json.loads(line)
    for field in ("backends", "servers", "reason", "duration_s", "timestamp", "level"):
        assert field in applied
    problem = next(e for e in d.events if e["event"] == "service.problem")
    assert {"namespace", "service", "annotation", "reason"} <= set(problem)
