"""Nodeport mode end to end: fake API -> lbsync daemon -> real HAProxy -> emulated nodes -> Pods, under load.

The VM in front of an overlay cluster: HAProxy reaches only the nodes (127.0.10.x here), each
with a kube-proxy-like forwarder on the nodePort, a /healthz responder and a
healthCheckNodePort responder (tests/helpers/nodes.py). Pods (127.0.11.x) see which node a
request came through, as with kube-proxy's SNAT.
"""
import collections
import contextlib
import http.client
import json
import os
import time

import pytest

from tests.fakeapi.server import FakeKubeApi
from tests.helpers.backends import Backend, free_port
from tests.helpers.haproxy_proc import HAProxyProcess, haproxy_available
from tests.helpers.lbsync_proc import LbsyncProcess, http as http_status
from tests.helpers.load import Load
from tests.helpers.nodes import EmulatedNode

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]
HOST = "shop.example.com"
CHECK_INTER_S, FALL = 1.0, 2  # --check-interval 1s; the template's fall 2


def node_ip(i):
    return f"127.0.10.{i}"


class NodeRig:
    def __init__(self, tmp, *, local=False):
        self.tmp, self.local = tmp, local
        self.api = FakeKubeApi(anonymous=True).start()
        self.kubeconfig = self.api.write_kubeconfig(os.path.join(tmp, "kubeconfig"), auth="none")
        self.pod_port, self.node_port, self.health_port = free_port(), free_port(), free_port()
        self.hcnp = free_port() if local else None
        self.http, self.metrics = free_port(), free_port()
        self.cfg = os.path.join(tmp, "haproxy.cfg")
        self.proc = HAProxyProcess(self.cfg, tmp)
        self.pods, self.nodes = {}, {}
        self.api.add_service("web", "shop", [("http", 80, self.pod_port)], annotations={
            "serviceloadbalancer/lb.host": HOST}, type="LoadBalancer" if local else "NodePort",
            node_ports={80: self.node_port}, external_traffic_policy="Local" if local else "Cluster",
            health_check_node_port=self.hcnp)

    def add_node(self, i, *, register=True):
        name = f"node-{i}"
        self.nodes[name] = EmulatedNode(name, node_ip(i), node_port=self.node_port, health_port=self.health_port,
                                        cluster_pods=lambda: sorted((ip, self.pod_port) for ip in self.pods),
                                        local=self.local, hcnp=self.hcnp)
        if register:
            self.api.add_node(name, node_ip(i))
        return self.nodes[name]

    def place(self, placement):
        """{pod ip: node name}: start the Pods, tell the nodes, publish the endpoints."""
        for ip in placement:
            if ip not in self.pods:
                self.pods[ip] = Backend(ip, host=ip, port=self.pod_port).start()
        for name, node in self.nodes.items():
            node.local_pods = [(ip, self.pod_port) for ip, n in sorted(placement.items()) if n == name]
        self.api.set_endpoints("shop", "web", ready=[{"ip": ip, "node": n} for ip, n in sorted(placement.items())])

    def args(self):
        return ["--kubeconfig", self.kubeconfig, "--haproxy-config", self.cfg, "--backend-mode", "nodeport",
                "--node-health-port", str(self.health_port), "--http-bind", f"127.0.0.1:{self.http}",
                "--stats-bind", "", "--deny-networks", "none", "--runtime-socket", self.proc.admin_socket,
                "--master-socket", self.proc.master_socket, "--check-interval", "1s", "--haproxy-log", ""]

    @contextlib.contextmanager
    def daemon(self):
        """The lbsync daemon, once its first pass is done (/readyz): changes after this are its news."""
        with LbsyncProcess([*self.args(), "--interval", "1", "--metrics-bind", f"127.0.0.1:{self.metrics}"]) as lb:
            wait_until(lambda: _status(f"http://127.0.0.1:{self.metrics}/readyz") == 200, 15, "lbsync ready")
            yield lb

    def start(self):
        once = LbsyncProcess([*self.args(), "--once"]).start()  # the first config, before HAProxy starts
        assert once.proc.wait(30) == 0, "".join(once.raw)
        self.proc.start()

    def per_node(self):
        """Requests the Pods received, by the node they came through."""
        return collections.Counter(r["client"] for pod in list(self.pods.values()) for r in list(pod.requests))

    def reloads(self):
        master = self.proc.master_command("show proc").splitlines()[1]
        return int(master.split()[2])

    def close(self):
        self.proc.stop()
        self.api.stop()
        for item in [*self.pods.values(), *self.nodes.values()]:
            item.stop()


@pytest.fixture
def make_rig(tmp_path):
    rigs = []

    def make(**kw):
        rigs.append(NodeRig(str(tmp_path), **kw))
        return rigs[-1]
    yield make
    for rig in rigs:
        rig.close()


def _status(url):
    try:
        return http_status(url, timeout=1)[0]
    except OSError:
        return None


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s")


def last_change(count, quiet, timeout):
    """Sample `count()` until it has not moved for `quiet` seconds; the time it last moved."""
    value, changed, deadline = count(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline and time.monotonic() - changed < quiet:
        time.sleep(0.02)
        now = count()
        if now != value:
            value, changed = now, time.monotonic()
    assert time.monotonic() - changed >= quiet, "still getting traffic"
    return changed


def test_cluster_policy_spreads_over_every_node_and_an_unhealthy_node_leaves_without_errors(make_rig):
    rig = make_rig()
    for i in range(1, 5):
        rig.add_node(i)
    rig.place({"127.0.11.1": "node-1", "127.0.11.2": "node-3"})
    rig.start()
    with rig.daemon() as lb, Load(rig.http, host=HOST) as load:
        wait_until(lambda: all(rig.per_node()[node_ip(i)] >= 20 for i in range(1, 5)), 10, "traffic on all nodes")
        flipped = time.monotonic()
        rig.nodes["node-2"].healthy = False  # kube-proxy's /healthz now 503 (node unhealthy or being deleted)
        gone = last_change(lambda: rig.per_node()[node_ip(2)], quiet=2.0, timeout=15) - flipped
        before = rig.per_node()
        time.sleep(1.0)
        after = rig.per_node()
    assert load.failures == [], load.failures[:5]
    assert after[node_ip(2)] == before[node_ip(2)]
    assert all(after[node_ip(i)] > before[node_ip(i)] for i in (1, 3, 4))
    assert gone <= FALL * CHECK_INTER_S + 0.5, f"node-2 still got requests {gone:.2f}s after its /healthz failed"
    assert rig.reloads() == 0
    print(f"\ncluster policy: {dict(after)}; unhealthy node's last request {gone:.2f}s after /healthz "
          f"turned 503 (fall x inter = {FALL * CHECK_INTER_S:g}s); {load.ok} requests, 0 failed")


def test_local_policy_sends_traffic_only_to_nodes_with_pods_weighted_by_their_count(make_rig):
    rig = make_rig(local=True)
    for i in range(1, 5):
        rig.add_node(i)
    placement = {"127.0.11.1": "node-1", "127.0.11.2": "node-1", "127.0.11.3": "node-1", "127.0.11.4": "node-3"}
    rig.place(placement)
    rig.start()
    with rig.daemon() as lb, Load(rig.http, host=HOST) as load:
        wait_until(lambda: sum(rig.per_node().values()) >= 800, 20, "800 requests")
        first = rig.per_node()
        mark = lb.mark
        rig.place({**placement, "127.0.11.5": "node-3"})  # node-3 gets a second Pod: weight 1 -> 2
        lb.event("runtime.updated", after=mark, timeout=10)
        base = rig.per_node()
        wait_until(lambda: sum((rig.per_node() - base).values()) >= 800, 20, "800 more requests")
        second = rig.per_node() - base
    assert load.failures == [], load.failures[:5]
    assert set(first) == {node_ip(1), node_ip(3)} and set(second) <= {node_ip(1), node_ip(3)}
    ratio, ratio2 = first[node_ip(1)] / first[node_ip(3)], second[node_ip(1)] / second[node_ip(3)]
    assert 2.5 <= ratio <= 3.5, first
    assert 1.2 <= ratio2 <= 1.8, second
    assert rig.reloads() == 0
    print(f"\nlocal policy: 3 and 1 Pods -> {dict(first)} ({ratio:.2f}:1); 3 and 2 Pods -> {dict(second)} "
          f"({ratio2:.2f}:1); {load.ok} requests, 0 failed, 0 reloads")


def test_a_node_added_and_removed_under_load_fails_nothing_and_never_reloads(make_rig):
    rig = make_rig()
    for i in range(1, 4):
        rig.add_node(i)
    rig.place({"127.0.11.1": "node-1", "127.0.11.2": "node-2"})
    rig.start()
    with rig.daemon() as lb, Load(rig.http, host=HOST) as load:
        wait_until(lambda: all(rig.per_node()[node_ip(i)] >= 20 for i in range(1, 4)), 10, "traffic on 3 nodes")
        added = time.monotonic()
        rig.add_node(4)  # registers with the API
        arrived = wait_until(lambda: rig.per_node()[node_ip(4)] > 0, 10, "traffic at the new node") - added
        # the slot filled through the Runtime API keeps the check on kube-proxy's port, not the nodePort
        wait_until(lambda: rig.nodes["node-4"].health_checks > 0, 5, "health checks at the new node's /healthz")
        removed = time.monotonic()
        rig.api.delete_node("node-1")  # the node object goes; its kube-proxy still forwards meanwhile
        gone = last_change(lambda: rig.per_node()[node_ip(1)], quiet=2.0, timeout=15) - removed
        updates = lb.count("runtime.updated")
    assert load.failures == [], load.failures[:5]
    assert rig.reloads() == 0 and updates >= 2
    print(f"\nnode added: traffic after {arrived:.2f}s; node removed: last request after {gone:.2f}s; "
          f"{load.ok} requests, 0 failed, 0 reloads, {updates} runtime updates")


def test_sticky_cookie_pins_a_client_to_one_node_and_stays_valid_when_nodes_change(make_rig):
    rig = make_rig()
    rig.api.update_service("shop", "web", lambda s: s["metadata"]["annotations"].update(
        {"serviceloadbalancer/lb.cookie-sticky-session": "true"}))
    for i in range(1, 4):
        rig.add_node(i)
    rig.place({"127.0.11.1": "node-1"})
    rig.start()

    def via(cookie=None):
        conn = http.client.HTTPConnection("127.0.0.1", rig.http, timeout=3)
        conn.request("GET", "/", headers={"Host": HOST, **({"Cookie": cookie} if cookie else {})})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        return body["client"], resp.getheader("Set-Cookie")

    node, set_cookie = via()
    cookie = set_cookie.split(";")[0]
    assert {via(cookie)[0] for _ in range(10)} == {node}
    assert len({via()[0] for _ in range(9)}) == 3  # without the cookie: every node
    with rig.daemon() as lb:
        mark = lb.mark
        rig.add_node(4)
        lb.event("runtime.updated", after=mark, timeout=10)
        assert {via(cookie)[0] for _ in range(10)} == {node}
    assert rig.reloads() == 0
