"""`lbsync routes --runtime-socket` and HAProxy's own /metrics, against a real HAProxy.

One cluster file, one `lbsync --once`, one HAProxy in master-worker mode; Pods are small
HTTP servers on 127.0.0.x. One Pod is healthy, one has nothing listening (its health
checks fail: DOWN), one is put in maintenance over the Runtime API, one is not ready
(counted, never served). The routes table must show what HAProxy itself reports.
"""
import json
import os
import subprocess
import time

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lbsync import cli, sync
from lbsync import settings as settings_mod
from tests.cluster import slice_, svc
from tests.helpers.backends import Backend, free_port, http_get
from tests.helpers.haproxy_proc import HAPROXY, HAProxyProcess, haproxy_available

needs_haproxy = pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")
HOST = "web.example.com"


@pytest.fixture(scope="module")
def lb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("routes")
    ports = {k: free_port() for k in ("http", "stats", "pod")}
    pod = Backend("web@127.0.0.2", host="127.0.0.2", port=ports["pod"]).start()
    cluster = tmp / "cluster.yaml"
    cluster.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        svc("web", "shop", annotations={"lb.host": HOST}),
        slice_("web", "shop", ready=["127.0.0.2", "127.0.0.3", "127.0.0.5"], not_ready=["127.0.0.4"],
               ports=[("http", ports["pod"])])]}))
    proc = HAProxyProcess(str(tmp / "haproxy.cfg"), str(tmp))
    common = ["--source", str(cluster), "--log-format", "json", "--runtime-socket", proc.admin_socket,
              "--deny-networks", "none"]
    assert cli.main([*common, "--haproxy-config", proc.cfg_path, "--once", "--check-interval", "200ms",
                     "--http-bind", f"127.0.0.1:{ports['http']}", "--stats-bind", f"127.0.0.1:{ports['stats']}",
                     "--haproxy-binary", HAPROXY]) == 0
    proc.start()
    yield {"proc": proc, "ports": ports, "args": common}
    proc.stop()
    pod.stop()


def routes(capsys, lb, *extra):
    code = cli.main(["routes", *lb["args"], *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@needs_haproxy
@pytest.mark.integration
def test_routes_show_the_live_up_down_maint_counts_haproxy_reports(lb, capsys):
    proc = lb["proc"]
    state = proc.admin_command(f"show servers state {HOST}")
    maint = next(line.split()[3] for line in state.splitlines() if " 127.0.0.5 " in line)
    assert proc.admin_command(f"set server {HOST}/{maint} state maint").strip() == ""
    want = {"up": 1, "down": 1, "maint": 1, "drain": 0}
    deadline = time.monotonic() + 10
    while True:  # 127.0.0.3 goes DOWN after two failed checks, 200 ms apart
        doc = json.loads(routes(capsys, lb, "-o", "json"))
        live = doc["routes"][0]["live"]
        if live == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert live == want, proc.log()
    assert doc["routes"][0]["servers"] == {"ready": 3, "total": 4}
    line = next(row for row in routes(capsys, lb).splitlines() if row.startswith("http ") and HOST in row)
    assert line.split()[5] == "3/4" and line.endswith("1 UP 1 DOWN 1 MAINT")
    # and HAProxy's own exporter agrees: one usable server in that backend
    assert _haproxy_metric(lb, "haproxy_backend_active_servers", proxy=HOST) == 1


@needs_haproxy
@pytest.mark.integration
def test_haproxy_exporter_answers_on_the_stats_frontend_beside_the_stats_page(lb):
    status, headers, body = http_get(lb["ports"]["stats"], "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"haproxy_process_uptime_seconds", "haproxy_frontend_http_requests",
            "haproxy_server_status"} <= names
    assert b"Statistics Report" in http_get(lb["ports"]["stats"], "/")[2]


def _haproxy_metric(lb, name, **labels):
    body = http_get(lb["ports"]["stats"], "/metrics")[2].decode()
    return next(s.value for f in text_string_to_metric_families(body) for s in f.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_routes_with_an_unreachable_runtime_socket_is_one_error_line_and_exit_2(tmp_path, capsys):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = cli.main(["routes", "--source", os.path.join(root, "examples", "cluster.yaml"),
                     "--runtime-socket", str(tmp_path / "no.sock"), "--log-format", "json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.splitlines()[-1].startswith("lbsync: error: runtime API ") and "no.sock" in err


@pytest.mark.parametrize("argv", [["routes", "--once"], ["routes", "--dry-run"], ["--once", "-o", "json"],
                                  ["route"], ["routes", "-o", "yaml"]])
def test_routes_flags_that_do_not_fit_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and "usage: lbsync" in capsys.readouterr().err


@pytest.mark.parametrize("setting, binary, stats, want", [
    ("auto", HAPROXY, "127.0.0.1:1936", "ask"),
    ("auto", "/nonexistent/haproxy", "127.0.0.1:1936", False),
    ("true", "/nonexistent/haproxy", "127.0.0.1:1936", True),
    ("false", HAPROXY, "127.0.0.1:1936", False),
    ("true", HAPROXY, "", False),
])
def test_exporter_detection_from_haproxy_vv(setting, binary, stats, want):
    if binary == HAPROXY and not haproxy_available():
        pytest.skip("haproxy binary not installed")
    if want == "ask":  # what this binary says, read here independently of lbsync's parser
        want = "prometheus-exporter" in subprocess.run([HAPROXY, "-vv"], capture_output=True, text=True).stdout
    s = settings_mod.Settings(haproxy_exporter=setting, haproxy_binary=binary, stats_bind=stats,
                              haproxy_version="2.6")
    assert sync.frame_from(s).prometheus_exporter is want


def test_exporter_setting_refuses_other_values():
    with pytest.raises(settings_mod.SettingsError, match="haproxy_exporter"):
        settings_mod.Settings(haproxy_exporter="yes-please")


@pytest.fixture
def api():
    from tests.fakeapi.server import FakeKubeApi
    a = FakeKubeApi(anonymous=True).start()
    a.add_service("web", "shop", [("http", 80, 8080)],
                  annotations={"serviceloadbalancer/lb.host": "shop.example.com"})
    a.set_endpoints("shop", "web", ready=["127.0.0.1", "127.0.0.2"], not_ready=["127.0.0.3"])
    a.add_service("dns", "kube-system", [("dns", 53, 53)])
    yield a
    a.stop()


@pytest.mark.integration
def test_routes_from_the_live_cluster_with_the_same_settings_as_a_sync(api, tmp_path, capsys):
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none")
    settings = tmp_path / "lbsync.yaml"
    settings.write_text(f"kubeconfig: {kubeconfig}\npath_prefixes: false\ndeny_networks: []\n")  # loopback Pods
    assert cli.main(["routes", "--config", str(settings), "-o", "json", "--log-format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["frontend"], r["host"], r["path"], r["backend"], r["servers"]) for r in doc["routes"]] == \
        [("http", "shop.example.com", "/", "shop.example.com", {"ready": 2, "total": 3})]
    assert [(p["namespace"], p["service"]) for p in doc["left_out"]] == [("kube-system", "dns")]
    api.stop()
    assert cli.main(["routes", "--config", str(settings), "--api-timeout", "1", "--log-format", "json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines()[-1].startswith("lbsync: error: ")
