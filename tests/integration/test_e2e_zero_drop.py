"""End to end: fake API -> lbsync daemon -> real HAProxy (master-worker) -> Pods on 127.0.0.x, under load.

Endpoint changes must reach traffic through the Runtime API with no reload and no failed
request; a structural change (a new Service) must cost exactly one reload.
"""
import http.client
import os
import statistics
import time

import pytest

from tests.fakeapi.server import FakeKubeApi
from tests.helpers.backends import Backend, free_port
from tests.helpers.haproxy_proc import HAProxyProcess, haproxy_available
from tests.helpers.load import Load
from tests.helpers.lbsync_proc import LbsyncProcess, http as http_get_status, parse_prometheus


def http_get_text(url):
    status, body = http_get_status(url)
    assert status == 200
    return body

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]
HOST = "web.example.com"


class Rig:
    def __init__(self, tmp):
        self.tmp = tmp
        self.api = FakeKubeApi(anonymous=True).start()
        self.kubeconfig = self.api.write_kubeconfig(os.path.join(tmp, "kubeconfig"), auth="none")
        self.pod_port = free_port()
        self.pods = {}
        self.http = free_port()
        self.cfg = os.path.join(tmp, "haproxy.cfg")
        self.proc = HAProxyProcess(self.cfg, tmp)

    def pod(self, ip):
        if ip not in self.pods:
            self.pods[ip] = Backend(ip, host=ip, port=self.pod_port).start()
        return self.pods[ip]

    def args(self):
        return ["--kubeconfig", self.kubeconfig, "--haproxy-config", self.cfg,
                "--http-bind", f"127.0.0.1:{self.http}", "--stats-bind", "", "--deny-networks", "none",
                "--runtime-socket", self.proc.admin_socket, "--master-socket", self.proc.master_socket,
                "--check-interval", "1s", "--haproxy-log", ""]

    def set_pods(self, ips):
        for ip in ips:
            self.pod(ip)
        self.api.set_endpoints("shop", "web", ready=[{"ip": ip} for ip in ips])

    def close(self):
        self.proc.stop()
        self.api.stop()
        for b in self.pods.values():
            b.stop()


@pytest.fixture
def rig(tmp_path):
    r = Rig(str(tmp_path))
    r.api.add_service("web", "shop", [("http", 80, r.pod_port)], annotations={
        "serviceloadbalancer/lb.host": HOST})
    r.set_pods(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    once = LbsyncProcess([*r.args(), "--once"]).start()  # the first config, before HAProxy starts
    assert once.proc.wait(30) == 0, "".join(once.raw)
    r.proc.start()
    yield r
    r.close()


def reloads(rig):
    master = rig.proc.master_command("show proc").splitlines()[1]
    return int(master.split()[2])


def wait_for_traffic(pod, since, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(pod.requests) > since:
            return time.monotonic()
        time.sleep(0.005)
    raise AssertionError(f"no traffic at {pod.name} within {timeout}s")


# 20 changes: scale up, scale down, Pod IP replaced — always within the pre-allocated slots
CHANGES = [
    ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"],
    ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"],
    ["127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"],
    ["127.0.0.3", "127.0.0.4", "127.0.0.6", "127.0.0.7"],
    ["127.0.0.4", "127.0.0.6", "127.0.0.7", "127.0.0.8"],
    ["127.0.0.4", "127.0.0.6", "127.0.0.7"],
    ["127.0.0.6", "127.0.0.7", "127.0.0.9"],
    ["127.0.0.6", "127.0.0.7", "127.0.0.9", "127.0.0.10", "127.0.0.11"],
    ["127.0.0.7", "127.0.0.9", "127.0.0.10", "127.0.0.11"],
    ["127.0.0.9", "127.0.0.10", "127.0.0.11", "127.0.0.12"],
    ["127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13"],
    ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
    ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"],
    ["127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15"],
    ["127.0.0.13", "127.0.0.14", "127.0.0.15", "127.0.0.16"],
    ["127.0.0.13", "127.0.0.15", "127.0.0.16"],
    ["127.0.0.15", "127.0.0.16", "127.0.0.17"],
    ["127.0.0.15", "127.0.0.16", "127.0.0.17", "127.0.0.18"],
    ["127.0.0.16", "127.0.0.17", "127.0.0.18", "127.0.0.19"],
    ["127.0.0.17", "127.0.0.18", "127.0.0.19", "127.0.0.20"],
]


def test_twenty_endpoint_changes_under_load_drop_nothing_and_never_reload(rig):
    with LbsyncProcess([*rig.args(), "--interval", "1"]) as lb, Load(rig.http) as load:
        lb.event("daemon.started")
        time.sleep(1.5)
        current = {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
        latencies = []
        for ips in CHANGES:
            new, gone = set(ips) - current, current - set(ips)
            before = {ip: len(rig.pod(ip).requests) for ip in new}
            changed_at = time.monotonic()
            rig.set_pods(ips)
            arrivals = [wait_for_traffic(rig.pods[ip], before[ip]) for ip in sorted(new)]
            if arrivals:
                latencies.append(max(arrivals) - changed_at)
            else:
                lb.event("config.applied", after=0)
                time.sleep(1.5)
            time.sleep(0.3)  # let in-flight requests to the departed Pods finish
            stopped = {ip: len(rig.pods[ip].requests) for ip in gone}
            time.sleep(0.4)
            for ip in gone:
                assert len(rig.pods[ip].requests) == stopped[ip], f"{ip} still receives traffic"
            current = set(ips)
        served = load.ok
    assert load.failures == [], load.failures[:5]
    assert reloads(rig) == 0
    assert lb.count("config.applied") >= len(CHANGES)
    assert served > 500
    for ip in current:
        assert rig.pods[ip].requests
    print(f"\nendpoint change -> traffic at new Pod: median {statistics.median(latencies):.3f}s, "
          f"worst {max(latencies):.3f}s over {len(latencies)} changes; {served} requests, 0 failed, 0 reloads")


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "connection-close"])
def test_new_service_under_load_reloads_exactly_once(rig, keep_alive):
    metrics = free_port()
    with LbsyncProcess([*rig.args(), "--interval", "0.5", "--min-reload-interval", "2",
                        "--metrics-bind", f"127.0.0.1:{metrics}"]) as lb, \
            Load(rig.http, keep_alive=keep_alive) as load:
        lb.event("daemon.started")
        time.sleep(1.5)
        mark = lb.mark
        rig.api.add_service("api", "shop", [("http", 80, rig.pod_port)],
                            annotations={"serviceloadbalancer/lb.host": "api.example.com"})
        rig.set_pods(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        rig.pod("127.0.0.21")
        rig.api.set_endpoints("shop", "api", ready=["127.0.0.21"])
        lb.wait_for(lambda e: e.get("event") == "config.applied" and e.get("reloaded"), after=mark, timeout=15)
        time.sleep(2)
        values = parse_prometheus(http_get_text(f"http://127.0.0.1:{metrics}/metrics"))
    assert values['lbsync_reloads_total{result="success"}'] == 1
    assert values['lbsync_syncs_total{result="changed"}'] >= 1
    assert "backends added: api.example.com" in lb.event("haproxy.reloaded")["reason"]
    assert reloads(rig) == 1
    status = http.client.HTTPConnection("127.0.0.1", rig.http, timeout=3)
    status.request("GET", "/", headers={"Host": "api.example.com"})
    assert status.getresponse().status == 200
    print(f"\nstructural change, {'keep-alive' if keep_alive else 'Connection: close'}: "
          f"{load.ok} requests, {len(load.failures)} failed, 1 reload")
    if not keep_alive:
        assert load.failures == []
    else:
        assert len(load.failures) <= 8, load.failures[:5]


def test_scaling_one_to_three_and_back_is_followed_within_interval_plus_one_second(rig):
    rig.set_pods(["127.0.0.2"])
    with LbsyncProcess([*rig.args(), "--interval", "1"]) as lb:
        lb.event("daemon.started")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not _only(rig, {"127.0.0.2"}):
            time.sleep(0.1)
        assert _only(rig, {"127.0.0.2"})
        changed = time.monotonic()
        rig.set_pods(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        while not _only(rig, {"127.0.0.2", "127.0.0.3", "127.0.0.4"}):
            assert time.monotonic() - changed < 2.0, "scale-up not followed within interval + 1 s"
        changed = time.monotonic()
        rig.set_pods(["127.0.0.3"])
        while not _only(rig, {"127.0.0.3"}):
            assert time.monotonic() - changed < 2.0, "scale-down not followed within interval + 1 s"


def _only(rig, ips, samples=12):
    """True when `samples` requests through HAProxy reach exactly these Pods."""
    seen = set()
    for _ in range(samples):
        conn = http.client.HTTPConnection("127.0.0.1", rig.http, timeout=2)
        conn.request("GET", "/", headers={"Host": HOST})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        if resp.status != 200:
            return False
        seen.add(resp.getheader("X-Backend"))
    return seen == set(ips)


def test_sticky_cookie_stays_valid_while_pods_come_and_go_and_across_a_reload(rig):
    rig.api.update_service("shop", "web", lambda s: s["metadata"]["annotations"].update(
        {"serviceloadbalancer/lb.cookie-sticky-session": "true"}))
    with LbsyncProcess([*rig.args(), "--interval", "0.5", "--min-reload-interval", "0"]) as lb:
        lb.wait_for(lambda e: e.get("event") == "config.applied" and e.get("reloaded"), timeout=15)
        conn = http.client.HTTPConnection("127.0.0.1", rig.http, timeout=3)
        conn.request("GET", "/", headers={"Host": HOST})
        resp = conn.getresponse()
        resp.read()
        pinned, cookie = resp.getheader("X-Backend"), resp.getheader("Set-Cookie").split(";")[0]
        others = [ip for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4") if ip != pinned]

        def sticks():
            seen = set()
            for _ in range(10):
                c = http.client.HTTPConnection("127.0.0.1", rig.http, timeout=3)
                c.request("GET", "/", headers={"Host": HOST, "Cookie": cookie})
                r = c.getresponse()
                r.read()
                seen.add(r.getheader("X-Backend"))
            return seen == {pinned}

        assert sticks()
        mark = lb.mark
        rig.set_pods([pinned, "127.0.0.5", "127.0.0.6"])  # the other Pods go, new ones come: runtime update
        lb.event("runtime.updated", after=mark, timeout=10)
        assert sticks()
        mark = lb.mark
        rig.api.add_service("other", "shop", [("http", 80, rig.pod_port)])  # a reload
        lb.event("haproxy.reloaded", after=mark, timeout=10)
        time.sleep(0.5)
        assert sticks()
        assert others
