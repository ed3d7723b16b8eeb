"""The watch Store: a Node heartbeat (new resourceVersion, same pool inputs) moves nothing."""
import copy

from lbsync.kube.client import NODES, SERVICES
from lbsync.kube.store import Store


def node(name, rv, address="127.0.0.11", heartbeat="15:00", labels=None):
    return {"metadata": {"name": name, "uid": "u-" + name, "resourceVersion": rv, "labels": labels or {}},
            "spec": {}, "status": {"addresses": [{"type": "InternalIP", "address": address}],
                                   "conditions": [{"type": "Ready", "lastHeartbeatTime": heartbeat}]}}


def store_with_nodes():
    woken = []
    store = Store(on_change=lambda: woken.append(1))
    store.replace("*/nodes", NODES, [node("a", "1"), node("b", "2")])
    return store, woken


def test_a_heartbeat_event_is_kept_without_moving_the_version_or_waking():
    store, woken = store_with_nodes()
    version, n = store.version, len(woken)
    store.apply("*/nodes", NODES, "MODIFIED", node("a", "7", heartbeat="15:01"))
    assert store.version == version and len(woken) == n
    kept = store.snapshot().nodes[0]
    assert kept["metadata"]["resourceVersion"] == "7"  # the newest object is kept all the same


def test_what_the_pool_reads_moves_the_version():
    for changed in (node("a", "8", address="127.0.0.21"), node("a", "8", labels={"x": "y"}),
                    dict(node("a", "8"), spec={"taints": [{"key": "ToBeDeletedByClusterAutoscaler"}]})):
        store, woken = store_with_nodes()
        version, n = store.version, len(woken)
        store.apply("*/nodes", NODES, "MODIFIED", changed)
        assert store.version != version and len(woken) == n + 1
    store, _ = store_with_nodes()
    version = store.version
    store.apply("*/nodes", NODES, "DELETED", node("b", "9"))
    assert store.version != version and [n["metadata"]["name"] for n in store.snapshot().nodes] == ["a"]


def test_a_relist_of_heartbeat_only_changes_finds_no_difference():
    store, woken = store_with_nodes()
    version, n = store.version, len(woken)
    assert store.replace("*/nodes", NODES, [node("a", "31", heartbeat="15:09"), node("b", "32")]) is False
    assert store.version == version and len(woken) == n
    assert store.replace("*/nodes", NODES, [node("a", "33")]) is True  # b is gone


def test_other_resources_still_compare_resource_versions():
    store = Store()
    svc = {"metadata": {"name": "web", "namespace": "shop", "resourceVersion": "1"}}
    store.replace("*/services", SERVICES, [svc])
    version = store.version
    moved = copy.deepcopy(svc)
    moved["metadata"]["resourceVersion"] = "2"
    store.apply("*/services", SERVICES, "MODIFIED", moved)
    assert store.version != version


def test_an_unchanged_object_is_the_same_object_in_the_next_snapshot():
    """What lbsync.regroup relies on (Snapshot.held): identity tells what did not change."""
    store, _ = store_with_nodes()
    web = {"metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "3"}}
    store.replace("*/services", SERVICES, [web])
    first = store.snapshot()
    store.apply("*/nodes", NODES, "MODIFIED", node("b", "9", address="127.0.0.22"))
    second = store.snapshot()
    assert first.held and second.held
    assert second.services[0] is first.services[0] and second.nodes[0] is first.nodes[0]
    assert second.nodes[1] is not first.nodes[1]
