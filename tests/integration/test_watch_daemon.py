"""--watch end to end: fake API (watch streams) -> lbsync daemon -> real HAProxy -> Pods on 127.0.0.x.

Convergence through the watch (Runtime API, no reload, no poll), and recovery from each
fault a watch meets: 410 after compaction, a silent stream, a connection dropped in the
middle of an event, the API server down and back, a rotated token. In each case traffic
ends up at exactly the current Pods, and meanwhile no request fails.
"""
import os
import time

import pytest

from tests.fakeapi.server import FakeKubeApi
from tests.helpers.backends import free_port
from tests.helpers.haproxy_proc import haproxy_available
from tests.helpers.lbsync_proc import LbsyncProcess, http, parse_prometheus
from tests.integration.test_e2e_zero_drop import Load, Rig, reloads, wait_for_traffic

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]
HOST = "web.example.com"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"


class WatchRig(Rig):
    """Rig with bearer tokens from a rotatable token file, bookmarks every 0.5 s, a metrics port."""

    def __init__(self, tmp):
        super().__init__(tmp)
        self.api.stop()
        self.token = os.path.join(tmp, "token")
        with open(self.token, "w") as f:
            f.write("token-one\n")
        self.api = FakeKubeApi(tokens=["token-one"], bookmark_interval=0.5).start()
        self.kubeconfig = self.api.write_kubeconfig(os.path.join(tmp, "kubeconfig"), auth="none",
                                                    token_file=self.token)
        self.metrics = free_port()

    def args(self):
        return [*super().args(), "--api-timeout", "2"]

    def metric(self, name):
        status, text = http(f"http://127.0.0.1:{self.metrics}/metrics")
        return parse_prometheus(text).get(name, 0.0)


@pytest.fixture
def rig(tmp_path):
    r = WatchRig(str(tmp_path))
    r.api.add_service("web", "shop", [("http", 80, r.pod_port)], annotations={"serviceloadbalancer/lb.host": HOST})
    r.set_pods(["127.0.0.2", "127.0.0.3"])
    once = LbsyncProcess([*r.args(), "--once"]).start()
    assert once.proc.wait(30) == 0, "".join(once.raw)
    r.proc.start()
    yield r
    r.close()


def watching(rig, *extra):
    """The daemon in watch mode; a 60 s interval: nothing here is found by a poll."""
    return LbsyncProcess([*rig.args(), "--watch", "--watch-timeout", "2", "--resync", "120",
                          "--interval", "60", "--metrics-bind", f"127.0.0.1:{rig.metrics}", *extra])


def move_to(rig, ips, old, timeout=15.0):
    """Change the Pods; wait until each new one gets traffic and the removed ones none."""
    new = sorted(set(ips) - set(old))
    before = {ip: len(rig.pod(ip).requests) for ip in new}
    started = time.monotonic()
    rig.set_pods(ips)
    arrived = [wait_for_traffic(rig.pods[ip], before[ip], timeout) for ip in new]
    time.sleep(0.3)
    gone = {ip: len(rig.pods[ip].requests) for ip in set(old) - set(ips)}
    time.sleep(0.5)
    for ip, n in gone.items():
        assert len(rig.pods[ip].requests) == n, f"{ip} still receives traffic"
    return max(arrived) - started if arrived else 0.0


def test_endpoint_changes_reach_traffic_through_the_watch_without_a_poll_or_reload(rig):
    with watching(rig) as lb, Load(rig.http) as load:
        lb.event("daemon.started")
        _wait(lambda: rig.api.open_watches() == 2)
        rig.api.reset_counters()
        pods, latencies = ["127.0.0.2", "127.0.0.3"], []
        for n in range(4, 9):
            nxt = pods[1:] + [f"127.0.0.{n}"]
            latencies.append(move_to(rig, nxt, pods))
            pods = nxt
        lists = [r for r in rig.api.requests if "watch" not in r.query]
        assert lists == []  # every change came by the watch: no list, no poll
        assert rig.metric('lbsync_watch_events_total{resource="endpointslices",type="MODIFIED"}') >= 5
    assert load.failures == [] and load.ok > 100
    assert reloads(rig) == 0
    assert max(latencies) < 2.0  # a poll would take up to 60 s here


@pytest.mark.parametrize("fault", ["410", "silent", "cut", "down", "token"])
def test_watch_faults_recover_and_traffic_is_never_wrong(rig, fault):
    with watching(rig) as lb, Load(rig.http) as load:
        lb.event("daemon.started")
        _wait(lambda: rig.api.open_watches() == 2)
        pods = ["127.0.0.2", "127.0.0.3"]
        mark = lb.mark
        target = ["127.0.0.3", "127.0.0.4"]
        if fault == "410":
            # the client reconnects into a compacted history: its resourceVersion is too old
            rig.api.set_delay(1.0, path=SLICES)
            rig.api.end_watches()
            rig.set_pods(["127.0.0.3", "127.0.0.5"])
            rig.api.compact()
            time.sleep(1.2)
            rig.api.set_delay(0.0)
            pods = ["127.0.0.3", "127.0.0.5"]
            _wait(lambda: rig.metric('lbsync_watch_relists_total{reason="410",resource="endpointslices"}') >= 1)
        elif fault == "silent":
            rig.api.silence_watches()  # dead connections: no bytes, no end
        elif fault == "cut":
            rig.api.drop_watches_mid_line()  # the change below arrives cut in half
        elif fault == "down":
            rig.api.stop()
            time.sleep(1.0)
            rig.set_pods(["127.0.0.3", "127.0.0.5"])  # happens while lbsync cannot see it
            lb.event("sync.failed", after=mark, timeout=15)
            time.sleep(1.0)
            rig.api.start()
            pods = ["127.0.0.3", "127.0.0.5"]
        elif fault == "token":
            with open(rig.token, "w") as f:
                f.write("token-two\n")
            rig.api.set_tokens(["token-two"])  # the old one is revoked at once
            rig.api.end_watches()
        if fault in ("410", "down"):
            _wait_for_pod(rig, "127.0.0.5")
        move_to(rig, target, pods, timeout=20)
        if fault == "silent":
            assert rig.metric('lbsync_watch_starts_total{reason="silent",resource="endpointslices"}') >= 1
        if fault == "cut":
            assert rig.metric('lbsync_watch_relists_total{reason="cut",resource="endpointslices"}') >= 1
        assert "token-two" not in "".join(lb.raw) and "Traceback" not in "".join(lb.raw)
    assert load.failures == [], load.failures[:5]
    assert reloads(rig) == 0


def test_healthz_fails_when_a_watch_stays_silent_far_past_its_timeout(rig):
    with watching(rig) as lb:
        lb.event("daemon.started")
        _wait(lambda: rig.api.open_watches() == 2)
        assert http(f"http://127.0.0.1:{rig.metrics}/healthz")[0] == 200
        rig.api.stop()  # no list, no watch can succeed: nothing is heard any more
        status, body = 200, ""
        deadline = time.monotonic() + 60
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            status, body = http(f"http://127.0.0.1:{rig.metrics}/healthz")
        assert status == 503 and "silent for" in body
        rig.api.start()
        _wait(lambda: http(f"http://127.0.0.1:{rig.metrics}/healthz")[0] == 200, 40)
        assert http(f"http://127.0.0.1:{rig.metrics}/healthz")[0] == 200


def _wait_for_pod(rig, ip, timeout=20.0):
    wait_for_traffic(rig.pods[ip], 0, timeout)


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met within %gs" % timeout)
