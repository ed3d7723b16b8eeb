"""ApiSource lists Nodes (paged, same errors) only when some Service is served through nodePorts."""
from __future__ import annotations

import pytest

from lbsync import model
from lbsync.exceptions import ApiForbidden
from lbsync.kube import ApiSource, credentials
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.fixtures import fake_api  # noqa: F401

pytestmark = pytest.mark.integration
NODES = "/api/v1/nodes"
MODE = {"serviceloadbalancer/lb.backend-mode": "nodeport"}


def source(api: FakeKubeApi, tmp_path, **kwargs) -> ApiSource:
    path = api.write_kubeconfig(str(tmp_path / "kc"), auth="none")
    return ApiSource(credentials.load(path, env={}), **kwargs)


@pytest.fixture
def cluster(fake_api):  # noqa: F811
    fake_api.add_service("web", "shop", [("http", 80, 8080)], type="NodePort")
    fake_api.set_endpoints("shop", "web", ready=[{"ip": "127.244.1.5", "node": "node-a"}])
    for i in range(5):
        fake_api.add_node("node-%s" % "abcde"[i], "127.0.0.%d" % (11 + i))
    fake_api.reset_counters()
    return fake_api


def test_pod_mode_never_lists_nodes(cluster, tmp_path):
    snap = source(cluster, tmp_path).fetch()
    assert snap.nodes == () and cluster.request_count(NODES) == 0


def test_nodeport_setting_lists_nodes_paged_cluster_wide_even_with_namespaces(cluster, tmp_path):
    cluster.honor_limit_with_rv0 = True
    snap = source(cluster, tmp_path, backend_mode="nodeport", namespaces=["shop"], page_size=2).fetch()
    assert [n["metadata"]["name"] for n in snap.nodes] == ["node-a", "node-b", "node-c", "node-d", "node-e"]
    assert cluster.request_count(NODES) == 3  # 2 + 2 + 1
    node = snap.nodes[0]
    assert node["kind"] == "Node" and {"type": "InternalIP", "address": "127.0.0.11"} in node["status"]["addresses"]
    assert "images" not in node["status"] and "nodeInfo" not in node["status"]  # big and never read
    assert snap.endpoint_slices[0]["endpoints"][0]["nodeName"] == "node-a"  # Local policy needs it


def test_one_annotated_service_is_enough_to_list_nodes(cluster, tmp_path):
    cluster.add_service("api", "shop", [("http", 80, 8080)], type="NodePort", annotations=MODE)
    snap = source(cluster, tmp_path).fetch()
    assert len(snap.nodes) == 5 and cluster.request_count(NODES) == 1


def test_an_unchanged_poll_costs_one_node_list_and_a_node_change_is_seen(cluster, tmp_path):
    src = source(cluster, tmp_path, backend_mode="nodeport")
    first = src.fetch()
    cluster.reset_counters()
    again = src.fetch(unchanged_since=first.version)
    assert again.version == first.version and again.services == () and again.nodes == ()
    assert cluster.request_count(NODES) == 1 and again.requests == 3
    cluster.update_node("node-b", lambda n: n["metadata"]["labels"].update(
        {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}))
    cluster.reset_counters()
    moved = src.fetch(unchanged_since=first.version)
    assert moved.version != first.version and len(moved.nodes) == 5
    assert cluster.request_count(NODES) == 1


def test_forbidden_nodes_is_the_usual_error_naming_the_permission(cluster, tmp_path):
    cluster.deny("nodes")
    with pytest.raises(ApiForbidden, match='cannot list resource "nodes" in API group "" at the cluster scope'):
        source(cluster, tmp_path, backend_mode="nodeport").fetch()


def test_a_node_label_named_like_a_field_never_read_still_selects_the_node(fake_api, tmp_path):  # noqa: F811
    """Node labels are the user's: `zone` or `status` is what lbsync drops elsewhere (an
    endpoint's zone, a Service's status), never from labels --node-selector reads."""
    fake_api.add_service("web", "shop", [("http", 80, 8080)], type="NodePort", annotations=MODE)
    fake_api.set_endpoints("shop", "web", ready=[{"ip": "127.244.1.5", "node": "node-a"}])
    fake_api.add_node("node-a", "127.0.0.11", labels={"zone": "edge", "status": "ok"})
    fake_api.add_node("node-b", "127.0.0.12", labels={"zone": "core", "status": "ok"})
    snap = source(fake_api, tmp_path).fetch()
    pool = model.node_pool(snap, model.Options(node_selector="zone=edge,status=ok", deny_networks=()))
    assert pool is not None and [name for name, _ in pool.nodes] == ["node-a"]
