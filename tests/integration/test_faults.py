"""Faults of the disk, of HAProxy and of lbsync itself: the live config is always the old one or the
complete new one, HAProxy keeps serving, and lbsync says what happened in one line."""
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from lbsync import cli
from tests.cluster import slice_, svc
from tests.fakeapi.server import FakeKubeApi
from tests.helpers.fs import tmpfs
from tests.helpers.backends import Backend, free_port, http_get
from tests.helpers.haproxy_proc import HAProxyProcess, haproxy_available
from tests.helpers.lbsync_proc import ROOT, LbsyncProcess, http, parse_prometheus

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]


def cluster_file(path, services=3, *, salt=0):
    objs = []
    for i in range(services):
        objs.append(svc(f"web{i}", "shop", annotations={"lb.host": f"web{i}.example.com"}))
        objs.append(slice_(f"web{i}", "shop", ready=[f"10.{salt}.{i // 250}.{i % 250 + 1}"]))
    with open(path, "w") as f:
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objs}, f)
    return str(path)


def once(source, cfg, *extra):
    return cli.main(["--source", source, "--haproxy-config", str(cfg), "--once", "--http-bind", "127.0.0.1:18080",
                     "--log-format", "json", *extra])


def test_disk_full_while_staging_keeps_the_live_config(tmp_path, capsys):
    with tmpfs(tmp_path / "mnt", size="48k") as mnt:
        cfg = mnt / "haproxy.cfg"
        assert once(cluster_file(tmp_path / "small.yaml", 2), cfg) == 0
        good = cfg.read_text()
        filler = mnt / "filler"
        with open(filler, "wb") as f:  # leave less room than the new config needs
            with contextlib.suppress(OSError):
                f.write(b"x" * (48 * 1024 - len(good) - 2048))
        capsys.readouterr()
        assert once(cluster_file(tmp_path / "big.yaml", 60), cfg) == 2
        err = capsys.readouterr().err
        assert "No space left on device" in err and str(cfg) in err
        assert cfg.read_text() == good
        assert sorted(p.name for p in mnt.iterdir()) == ["filler", "haproxy.cfg"]


def test_read_only_config_directory_is_reported_and_nothing_changes(tmp_path, capsys):
    with tmpfs(tmp_path / "mnt") as mnt:
        cfg = mnt / "haproxy.cfg"
        assert once(cluster_file(tmp_path / "a.yaml", 2), cfg) == 0
        good = cfg.read_text()
        if subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only")
        capsys.readouterr()
        assert once(cluster_file(tmp_path / "b.yaml", 3), cfg) == 2
        assert "Read-only file system" in capsys.readouterr().err
        assert cfg.read_text() == good


def test_missing_haproxy_binary_is_one_clear_error(tmp_path, capsys):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("# last good\n")
    assert once(cluster_file(tmp_path / "a.yaml"), cfg, "--haproxy-binary", "/nonexistent/haproxy") == 2
    err = capsys.readouterr().err
    assert "/nonexistent/haproxy" in err and "Traceback" not in err
    assert cfg.read_text() == "# last good\n"


def test_sigkill_at_random_moments_never_leaves_a_partial_config(tmp_path):
    """Many write cycles between two big configs, each killed at a random moment."""
    a, b = cluster_file(tmp_path / "a.yaml", 400, salt=1), cluster_file(tmp_path / "b.yaml", 400, salt=2)
    cfg = tmp_path / "haproxy.cfg"
    assert once(b, cfg) == 0
    text_b = cfg.read_text()
    assert once(a, cfg) == 0
    text_a = cfg.read_text()
    rng = random.Random(7)
    env = dict(os.environ, PYTHONPATH=ROOT)
    killed_mid_write = 0
    for cycle in range(24):
        source = a if cycle % 2 else b
        proc = subprocess.Popen([sys.executable, "-m", "lbsync", "--source", source, "--haproxy-config", str(cfg),
                                 "--once", "--http-bind", "127.0.0.1:18080", "--log-format", "json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        time.sleep(rng.uniform(0.2, 0.9))
        if proc.poll() is None:
            killed_mid_write += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert cfg.read_text() in (text_a, text_b), f"cycle {cycle}: partial or foreign config"
    assert killed_mid_write >= 5  # the kills did land while lbsync was working
    out = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # the next normal run cleans the temp files the killed ones left behind
    assert once(a, cfg) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "b.yaml", "haproxy.cfg", "haproxy.cfg.bak"]


def test_config_that_fails_at_reload_leaves_the_old_worker_serving_and_is_a_counted_failure(tmp_path):
    """A TCP port another process holds passes `haproxy -c` but fails the reload's bind."""
    api = FakeKubeApi(anonymous=True).start()
    pod_port = free_port()
    pod = Backend("pod", host="127.0.0.2", port=pod_port).start()
    http_port, metrics_port, taken_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    proc = HAProxyProcess(str(cfg), str(tmp_path))
    blocker = socket.socket()
    try:
        api.add_service("web", "shop", [("http", 80, pod_port)],
                        annotations={"serviceloadbalancer/lb.host": "web.example.com"})
        api.set_endpoints("shop", "web", ready=["127.0.0.2"])
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none")
        args = ["--kubeconfig", kubeconfig, "--haproxy-config", str(cfg), "--http-bind", f"127.0.0.1:{http_port}",
                "--stats-bind", "", "--deny-networks", "none", "--master-socket", proc.master_socket,
                "--tcp-bind-address", "127.0.0.1", "--interval", "0.5", "--haproxy-log", "",
                "--metrics-bind", f"127.0.0.1:{metrics_port}", "--min-reload-interval", "0", "--batch-quiet", "0"]
        assert LbsyncProcess([*args, "--once"]).start().proc.wait(30) == 0
        proc.start()
        workers = proc.worker_pids()
        blocker.bind(("127.0.0.1", taken_port))
        blocker.listen()
        with LbsyncProcess(args) as lb:
            lb.event("daemon.started")
            api.add_service("thrift", "shop", [("thrift", 7611, pod_port)],
                            annotations={"serviceloadbalancer/lb.tcp": f"thrift:{taken_port}"})
            api.set_endpoints("shop", "thrift", ready=["127.0.0.2"])
            failed = lb.wait_for(lambda e: e.get("event") == "sync.failed", timeout=20)
            assert failed["kind"] == "ReloadFailed"
            assert proc.worker_pids() == workers  # the old worker is still the one serving
            status, _, _ = http_get(http_port, "/", headers={"Host": "web.example.com"})
            assert status == 200
            values = parse_prometheus(http(f"http://127.0.0.1:{metrics_port}/metrics")[1])
            assert values['lbsync_reloads_total{result="failure"}'] >= 1
            assert values.get('lbsync_reloads_total{result="success"}', 0) == 0
            # when the port is free again, the pending reload is retried and succeeds
            blocker.close()
            lb.wait_for(lambda e: e.get("event") == "sync.recovered", timeout=30)
            lb.wait_for(lambda e: e.get("event") == "config.applied" and e.get("reloaded"), timeout=30)
            assert proc.worker_pids() != workers
    finally:
        blocker.close()
        proc.stop()
        pod.stop()
        api.stop()
