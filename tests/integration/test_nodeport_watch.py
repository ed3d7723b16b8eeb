"""Nodeport mode with --watch: fake API (Node watch) -> lbsync daemon -> real HAProxy -> emulated nodes.

A node registered or deleted reaches HAProxy through the Runtime API within the watch's
latency, with no poll (interval 600 s), no list and no reload; a node's status heartbeats
(a new resourceVersion every few seconds on a real cluster) wake no pass at all.
"""
import contextlib
import time

import pytest

from tests.helpers.haproxy_proc import haproxy_available
from tests.helpers.lbsync_proc import LbsyncProcess, http, parse_prometheus
from tests.helpers.load import Load
from tests.integration.test_nodeport_e2e import HOST, NodeRig, _status, last_change, node_ip, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]
NODES = "/api/v1/nodes"


class WatchNodeRig(NodeRig):
    def metric(self, name):
        return parse_prometheus(http(f"http://127.0.0.1:{self.metrics}/metrics")[1]).get(name, 0.0)

    @contextlib.contextmanager
    def watching(self):
        """The daemon in watch mode, once its first pass is done and its 3 watches are open."""
        with LbsyncProcess([*self.args(), "--watch", "--watch-timeout", "2", "--resync", "600", "--interval",
                            "600", "--metrics-bind", f"127.0.0.1:{self.metrics}"]) as lb:
            wait_until(lambda: _status(f"http://127.0.0.1:{self.metrics}/readyz") == 200
                       and self.api.open_watches() == 3, 15, "lbsync watching Services, EndpointSlices and Nodes")
            yield lb


@pytest.fixture
def rig(tmp_path):
    r = WatchNodeRig(str(tmp_path))
    for i in range(1, 4):
        r.add_node(i)
    r.place({"127.0.11.1": "node-1", "127.0.11.2": "node-2"})
    r.start()
    yield r
    r.close()


def _heartbeat(node):
    node["status"]["conditions"][0]["lastHeartbeatTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    node["status"]["conditions"][0]["message"] = "kubelet is posting ready status %f" % time.time()


def test_a_node_added_and_removed_reaches_haproxy_through_the_watch_without_a_list_or_reload(rig):
    with rig.watching() as lb, Load(rig.http, host=HOST) as load:
        wait_until(lambda: all(rig.per_node()[node_ip(i)] >= 20 for i in range(1, 4)), 10, "traffic on 3 nodes")
        rig.api.reset_counters()
        added = time.monotonic()
        rig.add_node(4)
        arrived = wait_until(lambda: rig.per_node()[node_ip(4)] > 0, 10, "traffic at the new node") - added
        removed = time.monotonic()
        rig.api.delete_node("node-1")  # its kube-proxy still forwards: only lbsync can take it out
        gone = last_change(lambda: rig.per_node()[node_ip(1)], quiet=2.0, timeout=15) - removed
        lists = [r.path for r in rig.api.requests if "watch" not in r.query]
        events = (rig.metric('lbsync_watch_events_total{resource="nodes",type="ADDED"}'),
                  rig.metric('lbsync_watch_events_total{resource="nodes",type="DELETED"}'))
        updates = lb.count("runtime.updated")
    assert load.failures == [], load.failures[:5]
    assert lists == []  # both changes came by the Node watch: no list, no poll
    assert events == (1.0, 1.0) and updates >= 2
    assert rig.reloads() == 0
    print(f"\n--watch, nodeport: node added -> traffic after {arrived:.2f}s; node removed -> last request "
          f"after {gone:.2f}s; {load.ok} requests, 0 failed, 0 reloads, 0 lists")


def test_node_heartbeats_wake_no_pass_and_change_nothing(rig):
    with rig.watching() as lb:
        mark = lb.mark
        passes = {r: rig.metric(f'lbsync_syncs_total{{result="{r}"}}') for r in ("changed", "unchanged", "failed")}
        before = rig.metric('lbsync_watch_events_total{resource="nodes",type="MODIFIED"}')
        for _ in range(5):
            for i in range(1, 4):
                rig.api.update_node(f"node-{i}", _heartbeat)
            time.sleep(0.1)
        wait_until(lambda: rig.metric('lbsync_watch_events_total{resource="nodes",type="MODIFIED"}') == before + 15,
                   10, "15 heartbeats received")
        time.sleep(1.0)  # batch_quiet and more: a pass woken by them would have run by now
        after = {r: rig.metric(f'lbsync_syncs_total{{result="{r}"}}') for r in ("changed", "unchanged", "failed")}
        # a real change still goes through at once: the heartbeats did not stop the watch
        rig.api.update_node("node-2", lambda n: n["metadata"]["labels"].update(
            {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}))
        lb.event("runtime.updated", after=mark, timeout=10)
    assert after == passes  # no pass ran, not even one that found nothing to do
    assert rig.reloads() == 0
