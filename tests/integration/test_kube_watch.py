"""lbsync.kube.WatchSource against the fake API's watch streams over real loopback HTTP(S)."""
from __future__ import annotations

import time
from collections import Counter

import pytest

from lbsync.exceptions import ApiError, ApiForbidden, SourceError
from lbsync.kube import WatchSource, credentials
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.fixtures import fake_api_tls, fake_tls_material  # noqa: F401
from tests.fakeapi.samples import wso2_cluster

pytestmark = pytest.mark.integration
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"


class Counts(Counter):
    def __call__(self, name, amount=1.0, **labels):
        self[(name,) + tuple(v for _, v in sorted(labels.items()))] += amount  # label values, by label name


@pytest.fixture
def api():
    a = FakeKubeApi(anonymous=True, bookmark_interval=0.3).start()
    a.add_service("web", "shop", [("http", 80, 8080)], labels={"tier": "web"})
    a.set_endpoints("shop", "web", ready=["127.0.0.1"])
    yield a
    a.stop()


@pytest.fixture(autouse=True)
def _close_sources():
    yield
    for src in OPEN:
        src.close()
    OPEN.clear()


OPEN = []


def watch_source(api, tmp_path, **kwargs):
    kc = api.write_kubeconfig(str(tmp_path / "kc"), auth="none")
    kwargs.setdefault("watch_timeout", 1.0)
    kwargs.setdefault("resync", 0)
    src = WatchSource(credentials.load(kc, env={}), timeout=2.0, **kwargs)
    counts, woken = Counts(), []
    src.subscribe(lambda: woken.append(time.monotonic()), counts)
    OPEN.append(src)
    return src, counts, woken


def ips(snapshot):
    return sorted(a for s in snapshot.endpoint_slices for e in s.get("endpoints") or [] for a in e["addresses"])


def eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, SourceError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_lists_once_then_follows_events_and_wakes_the_caller(api, tmp_path):
    src, counts, woken = watch_source(api, tmp_path)
    first = src.fetch()
    assert [s["metadata"]["name"] for s in first.services] == ["web"] and ips(first) == ["127.0.0.1"]
    assert src.fetch(unchanged_since=first.version).services == ()  # unchanged: nothing to hand over
    n = len(woken)
    api.set_endpoints("shop", "web", ready=["127.0.0.2"])
    eventually(lambda: _assert(ips(src.fetch()) == ["127.0.0.2"]))
    assert len(woken) > n and src.fetch().version != first.version
    api.delete_service("shop", "web")
    eventually(lambda: _assert(src.fetch().services == () and src.fetch().endpoint_slices == ()))
    lists = [r for r in api.requests if "watch" not in r.query]
    assert len(lists) == 2  # one list per resource, then only watches
    src.close()


def test_watch_requests_ask_bookmarks_resume_from_the_last_rv_and_randomise_their_timeout(api, tmp_path):
    src, counts, _ = watch_source(api, tmp_path, watch_timeout=1.0)
    src.fetch()
    time.sleep(4.5)
    watches = [r for r in api.requests if r.path == SLICES and r.query.get("watch") == "1"]
    assert len(watches) >= 3  # each stream ended by its timeoutSeconds and was resumed
    assert all(r.query["allowWatchBookmarks"] == "true" for r in watches)
    assert {r.query["timeoutSeconds"] for r in watches} <= {"1", "2"}
    rvs = [int(r.query["resourceVersion"]) for r in watches]
    assert rvs == sorted(rvs) and rvs[-1] >= api.store.rv - 0  # resumed from bookmarks, never behind
    assert [r for r in api.requests if r.path == SLICES and "watch" not in r.query].__len__() == 1
    assert counts[("lbsync_watch_starts_total", "resume", "endpointslices")] >= 2
    src.close()


def test_a_half_written_event_is_never_applied(api, tmp_path):
    src, counts, _ = watch_source(api, tmp_path, watch_timeout=30.0)
    src.fetch()
    eventually(lambda: _assert(api.open_watches() == 2))
    seen = []
    api.drop_watches_mid_line()
    api.on_request = lambda r: seen.append(ips(src.store.snapshot())) if "watch" not in r.query else None
    api.set_endpoints("shop", "web", ready=["127.0.0.7"])
    eventually(lambda: _assert(ips(src.fetch()) == ["127.0.0.7"]))
    assert seen and seen[0] == ["127.0.0.1"]  # at the relist the store still held the old, whole state
    assert counts[("lbsync_watch_relists_total", "cut", "endpointslices")] == 1
    src.close()


def test_a_410_relists_and_gets_what_the_compacted_history_lost(api, tmp_path):
    src, counts, _ = watch_source(api, tmp_path, watch_timeout=30.0)
    src.fetch()
    eventually(lambda: _assert(api.open_watches() == 2))
    api.set_delay(0.8, path=SLICES)
    api.end_watches()
    api.set_endpoints("shop", "web", ready=["127.0.0.9"])
    api.compact()
    time.sleep(0.3)
    api.set_delay(0.0)
    eventually(lambda: _assert(ips(src.fetch()) == ["127.0.0.9"]))
    assert counts[("lbsync_watch_relists_total", "410", "endpointslices")] == 1
    src.close()


def test_a_periodic_resync_repairs_a_lost_event_and_counts_it(api, tmp_path):
    src, counts, _ = watch_source(api, tmp_path, watch_timeout=30.0, resync=2.0)
    src.fetch()
    api.lose_next_events(2)  # the slice and the v1 Endpoints change; the watch never hears of them
    api.set_endpoints("shop", "web", ready=["127.0.0.5"])
    time.sleep(0.5)
    assert ips(src.fetch()) == ["127.0.0.1"]
    eventually(lambda: _assert(ips(src.fetch()) == ["127.0.0.5"]), timeout=6)
    assert counts[("lbsync_watch_resync_differences_total", "endpointslices")] == 1
    assert counts[("lbsync_watch_resync_differences_total", "services")] == 0
    src.close()


def test_namespaces_and_selector_are_watched_like_they_are_listed(api, tmp_path):
    api.add_service("db", "shop", [5432], labels={"tier": "db"})
    api.add_service("other", "elsewhere", [80], labels={"tier": "web"})
    src, _, _ = watch_source(api, tmp_path, namespaces=["shop"], selector="tier=web")
    assert [s["metadata"]["name"] for s in src.fetch().services] == ["web"]
    api.add_service("front", "shop", [80], labels={"tier": "web"})
    api.add_service("cache", "shop", [6379], labels={"tier": "cache"})
    eventually(lambda: _assert([s["metadata"]["name"] for s in src.fetch().services] == ["front", "web"]))
    watches = [r for r in api.requests if r.query.get("watch") == "1"]
    assert {r.path for r in watches} == {"/api/v1/namespaces/shop/services",
                                         "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"}
    assert all(r.query.get("labelSelector") == "tier=web" for r in watches if "services" in r.path)
    src.close()


def test_falls_back_to_watching_v1_endpoints_where_slices_are_not_served(tmp_path):
    with FakeKubeApi(anonymous=True, serve_endpointslices=False) as api:
        api.add_service("web", "shop", [("http", 80, 8080)])
        api.set_endpoints("shop", "web", ready=["127.0.0.1"])
        src, _, _ = watch_source(api, tmp_path)
        assert len(src.fetch().endpoints) == 1
        api.set_endpoints("shop", "web", ready=["127.0.0.2"])
        eventually(lambda: _assert(src.fetch().endpoints[0]["subsets"][0]["addresses"][0]["ip"] == "127.0.0.2"))
        src.close()


def test_never_serves_a_state_it_knows_is_stale(api, tmp_path):
    src, _, _ = watch_source(api, tmp_path, watch_timeout=30.0)
    src.fetch()
    api.stop()  # streams cut, relists refused
    eventually(lambda: _assert(_raises(src.fetch)))
    with pytest.raises(ApiError, match="cannot connect"):
        src.fetch()
    api.start()
    eventually(lambda: _assert(ips(src.fetch()) == ["127.0.0.1"]), timeout=15)
    src.close()


def test_first_fetch_fails_clearly_when_the_first_list_cannot_be_made(tmp_path):
    api = FakeKubeApi(anonymous=True).start()
    api.deny("services")
    src, _, _ = watch_source(api, tmp_path)
    with pytest.raises(SourceError, match="cannot list resource"):
        src.fetch()
    src.close()
    api.stop()


def test_tls_and_token_work_for_streams(fake_api_tls, tmp_path):  # noqa: F811
    wso2_cluster(fake_api_tls)
    kc = fake_api_tls.write_kubeconfig(str(tmp_path / "kc"))
    src = WatchSource(credentials.load(kc, env={}), watch_timeout=1.0, resync=0)
    assert len(src.fetch().services) == 5
    fake_api_tls.add_service("late", "shop", [80])
    eventually(lambda: _assert(len(src.fetch().services) == 6))
    src.close()


def _raises(fn):
    try:
        fn()
    except SourceError:
        return True
    return False


def _assert(ok):
    assert ok


def test_a_bug_while_applying_an_event_does_not_end_the_watch(api, tmp_path):
    src, counts, _ = watch_source(api, tmp_path, watch_timeout=30.0)
    src.fetch()
    real_apply, calls = src.store.apply, []

    def broken_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise KeyError("a bug")
        return real_apply(*args)

    src.store.apply = broken_once
    api.set_endpoints("shop", "web", ready=["127.0.0.8"])
    eventually(lambda: _assert(ips(src.fetch()) == ["127.0.0.8"]))  # the relist brought it
    assert counts[("lbsync_watch_relists_total", "error", "endpointslices")] == 1
    api.set_endpoints("shop", "web", ready=["127.0.0.9"])
    eventually(lambda: _assert(ips(src.fetch()) == ["127.0.0.9"]))  # and the watch goes on


MODE = {"serviceloadbalancer/lb.backend-mode": "nodeport"}
NODES = "/api/v1/nodes"


def names(snapshot):
    return [n["metadata"]["name"] for n in snapshot.nodes]


def _heartbeat(node):
    node["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-11-29T15:%02d:00Z" % (time.time() % 60)


@pytest.fixture
def nodeport(api):
    api.set_endpoints("shop", "web", ready=[{"ip": "127.0.0.1", "node": "node-a"}])
    api.add_node("node-a", "127.0.0.11")
    api.add_node("node-b", "127.0.0.12")
    return api


def test_nodeport_mode_watches_nodes_cluster_wide_as_a_poll_lists_them(nodeport, tmp_path):
    src, counts, _ = watch_source(nodeport, tmp_path, backend_mode="nodeport", namespaces=["shop"])
    first = src.fetch()
    assert names(first) == ["node-a", "node-b"]
    node = first.nodes[0]
    assert node["kind"] == "Node" and {"type": "InternalIP", "address": "127.0.0.11"} in node["status"]["addresses"]
    assert "images" not in node["status"] and "nodeInfo" not in node["status"]  # big and never read
    assert first.endpoint_slices[0]["endpoints"][0]["nodeName"] == "node-a"  # Local policy needs it
    nodeport.add_node("node-c", "127.0.0.13")
    eventually(lambda: _assert(names(src.fetch()) == ["node-a", "node-b", "node-c"]))
    nodeport.delete_node("node-a")
    eventually(lambda: _assert(names(src.fetch()) == ["node-b", "node-c"]))
    assert nodeport.request_count(NODES) >= 2  # one list, one (cluster-scoped) watch at least
    assert counts[("lbsync_watch_events_total", "nodes", "ADDED")] == 1
    assert counts[("lbsync_watch_events_total", "nodes", "DELETED")] == 1


def test_a_node_heartbeat_moves_nothing_a_pass_reads(nodeport, tmp_path):
    src, counts, woken = watch_source(nodeport, tmp_path, backend_mode="nodeport", resync=1.5)
    first = src.fetch()
    n = len(woken)
    for _ in range(3):
        nodeport.update_node("node-a", _heartbeat)
    eventually(lambda: _assert(counts[("lbsync_watch_events_total", "nodes", "MODIFIED")] == 3))
    assert src.store.version == first.version and len(woken) == n  # no wake-up, no pass
    assert src.fetch(unchanged_since=first.version).services == ()  # a pass would find nothing to do
    kept = src.store.snapshot().nodes[0]["status"]["conditions"][0]["lastHeartbeatTime"]
    assert kept == nodeport.store.get("nodes", "", "node-a")["status"]["conditions"][0]["lastHeartbeatTime"]
    # the periodic relist sees other resourceVersions, but not a difference
    eventually(lambda: _assert(counts[("lbsync_watch_relists_total", "resync", "nodes")] >= 1))
    assert counts[("lbsync_watch_resync_differences_total", "nodes")] == 0
    assert src.store.version == first.version
    nodeport.update_node("node-a", lambda node: node["spec"].update(
        taints=[{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]))
    eventually(lambda: _assert(src.store.version != first.version and len(woken) > n))


def test_nodes_are_watched_only_while_a_service_is_annotated_into_nodeport_mode(nodeport, tmp_path):
    src, _, _ = watch_source(nodeport, tmp_path)
    assert src.fetch().nodes == () and src.node_reflector is None
    assert nodeport.request_count(NODES) == 0  # pod mode never reads Nodes
    nodeport.update_service("shop", "web", lambda s: s["metadata"].setdefault("annotations", {}).update(MODE))
    eventually(lambda: _assert(names(src.fetch()) == ["node-a", "node-b"]))
    assert src.fetch().endpoint_slices[0]["endpoints"][0]["nodeName"] == "node-a"  # no relist needed
    reflector = src.node_reflector
    nodeport.update_service("shop", "web", lambda s: s["metadata"]["annotations"].clear())
    eventually(lambda: _assert(src.fetch().nodes == () and src.node_reflector is None))
    assert reflector.stop.is_set()


def test_forbidden_nodes_fail_the_pass_naming_the_permission_as_a_poll_does(nodeport, tmp_path):
    nodeport.deny("nodes")
    src, _, _ = watch_source(nodeport, tmp_path, backend_mode="nodeport")
    with pytest.raises(ApiForbidden, match='cannot list resource "nodes" in API group "" at the cluster scope'):
        src.fetch()
    with pytest.raises(ApiForbidden):
        src.fetch()  # every pass, until the permission is granted
    nodeport.allow("nodes")
    eventually(lambda: _assert(names(src.fetch()) == ["node-a", "node-b"]), timeout=15)


def test_forbidden_nodes_stop_failing_passes_once_no_service_needs_them(nodeport, tmp_path):
    nodeport.deny("nodes")
    nodeport.update_service("shop", "web", lambda s: s["metadata"].setdefault("annotations", {}).update(MODE))
    src, _, _ = watch_source(nodeport, tmp_path)
    with pytest.raises(ApiForbidden):
        src.fetch()
    nodeport.update_service("shop", "web", lambda s: s["metadata"]["annotations"].clear())
    eventually(lambda: _assert(ips(src.fetch()) == ["127.0.0.1"] and src.node_reflector is None))
