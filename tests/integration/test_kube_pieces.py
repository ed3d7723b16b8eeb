"""Change detection per object on a polled list (lbsync.kube.pieces), against the fake API:
after one object changed, only its Service's objects are decoded, the rest are stand-ins,
and a sync built on them gives the bytes of a cold sync of the same cluster."""
from __future__ import annotations

import copy
import random

import pytest

from lbsync import sync
from lbsync.exceptions import ApiError, ApiMalformed
from lbsync.kube import ApiSource, credentials
from lbsync.snapshot import Unread, identity
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.fixtures import fake_api  # noqa: F401
from tests.unit.test_incremental import settings_for


def settings(tmp_path, kubeconfig: str):
    """Loopback Pods and nodes (no live HAProxy here, but the suite keeps to 127/8), served."""
    return settings_for(tmp_path, kubeconfig=kubeconfig, deny_networks=())


def source(api: FakeKubeApi, tmp_path, **kwargs) -> ApiSource:
    path = api.write_kubeconfig(str(tmp_path / "kc"), auth="token")
    return ApiSource(credentials.load(path, env={}), **kwargs)


def owner(obj: dict):
    meta = obj["metadata"]
    return meta["namespace"], (meta.get("labels") or {}).get("kubernetes.io/service-name", meta["name"])


def decoded(objs) -> set:
    """The owners of the objects handed on in full."""
    return {owner(o) for o in objs if not isinstance(o, Unread)}


def test_one_changed_endpoint_decodes_only_its_service(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(20, 3, namespaces=["a", "b"])
    src = source(fake_api, tmp_path, stand_ins=True)
    first = src.fetch()
    assert decoded(first.services) == {owner(s) for s in first.services}  # a first read: all in full
    fake_api.set_endpoints("a", "svc-00002", ready=["127.9.9.9"])
    moved = src.fetch(unchanged_since=first.version)
    assert decoded(moved.services) == decoded(moved.endpoint_slices) == {("a", "svc-00002")}
    assert moved.requests == 2  # the probe of the slice list (its body held for the fetch), then the Services
    assert moved.held and not first.held  # stand-ins are the reader's own objects; a first read's are not
    for snap in (first, moved):  # typed once, as decoded; a stand-in keeps its object's type
        assert {(o["kind"], o["apiVersion"]) for o in snap.services} == {("Service", "v1")}
        slices = {(o["kind"], o["apiVersion"]) for o in snap.endpoint_slices}
        assert slices == {("EndpointSlice", "discovery.k8s.io/v1")}
    fresh = source(fake_api, tmp_path).fetch()  # no stand-ins: every object in full
    assert moved.bytes == fresh.bytes  # each list downloaded once
    assert [identity(o) for o in moved.services] == [identity(o) for o in fresh.services]
    assert [identity(o) for o in moved.endpoint_slices] == [identity(o) for o in fresh.endpoint_slices]
    stand_in = next(o for o in moved.endpoint_slices if isinstance(o, Unread))
    assert "endpoints" not in stand_in and "ports" not in stand_in  # identity and owner only
    assert set(stand_in["metadata"]) == {"name", "namespace", "uid", "resourceVersion", "labels"}
    assert set(stand_in["metadata"]["labels"]) == {"kubernetes.io/service-name"}
    full = next(o for o in moved.endpoint_slices if not isinstance(o, Unread))
    assert full["endpoints"][0]["addresses"] == ["127.9.9.9"]


def test_one_slice_of_many_makes_the_whole_service_read_again(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(6, 2)
    fake_api.set_endpoints("default", "svc-00001", ready=["127.7.%d.%d" % (i // 200, i % 200) for i in range(250)])
    src = source(fake_api, tmp_path, stand_ins=True)
    first = src.fetch()
    names = fake_api.store.slice_names("default", "svc-00001")
    assert len(names) == 3  # 100 endpoints per slice
    one = copy.deepcopy(fake_api.store.get("endpointslices", "default", names[1]))
    one["endpoints"][0]["addresses"] = ["127.8.8.8"]
    fake_api.store.put("endpointslices", one)
    moved = src.fetch(unchanged_since=first.version)
    full = [o for o in moved.endpoint_slices if not isinstance(o, Unread)]
    assert sorted(o["metadata"]["name"] for o in full) == sorted(names)  # the unchanged two as well
    assert decoded(moved.services) == {("default", "svc-00001")}
    fake_api.store.delete("endpointslices", "default", names[2])  # a slice gone: its Service is read again
    gone = src.fetch(unchanged_since=moved.version)
    assert sorted(o["metadata"]["name"] for o in gone.endpoint_slices if not isinstance(o, Unread)) == names[:2]
    assert decoded(gone.services) == {("default", "svc-00001")}


def test_polling_sync_rebuilds_one_service_and_gives_the_bytes_of_a_cold_sync(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(12, 2, namespaces=["a", "b"])
    warm = sync.Syncer(settings(tmp_path, fake_api.write_kubeconfig(str(tmp_path / "kc"))))
    assert warm.plan().text
    rnd = random.Random(5)
    for step in range(12):
        ns, name = rnd.choice(["a", "b"]), "svc-%05d" % (rnd.randrange(6) * 2 + (0 if step % 2 else 1))
        if fake_api.store.get("services", ns, name) is None:
            ns = "b" if ns == "a" else "a"
        if step % 4 == 3:  # a Service edit: its Part is built again, conflicts settled again
            fake_api.update_service(ns, name, lambda s: s["metadata"].setdefault("annotations", {}).update(
                {"serviceloadbalancer/lb.host": "h%d.example.com" % step}))
        else:
            fake_api.set_endpoints(ns, name, ready=["127.9.%d.%d" % (step, i) for i in range(rnd.randrange(1, 4))])
        plan = warm.plan()
        cold = sync.Syncer(settings(tmp_path, str(tmp_path / "kc"))).plan()
        assert plan.text == cold.text
        assert warm.cache.parts_built == 1  # only the changed Service was modelled again
        assert warm.cache.spliced == (step % 4 != 3)  # a polled pass splices too


def test_a_body_the_probe_held_is_never_read_by_a_later_poll(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(10, 2)
    src = source(fake_api, tmp_path, stand_ins=True)
    first = src.fetch()
    fake_api.set_endpoints("default", "svc-00004", ready=["127.9.9.1"])
    fake_api.fail_next(1, 500, path="/api/v1/services")  # after the probe held the changed slice list
    with pytest.raises(ApiError):
        src.fetch(unchanged_since=first.version)
    fake_api.set_endpoints("default", "svc-00004", ready=["127.9.9.2"])
    before = fake_api.request_count()
    again = src.fetch()  # no probe this time: whatever is held would be the fetch's slice list
    assert fake_api.request_count() - before == again.requests == 2
    moved = [o for o in again.endpoint_slices if owner(o) == ("default", "svc-00004")]
    assert [e["addresses"] for o in moved for e in o["endpoints"]] == [["127.9.9.2"]]
    fresh = source(fake_api, tmp_path).fetch()
    assert [identity(o) for o in again.endpoint_slices] == [identity(o) for o in fresh.endpoint_slices]


def test_kept_parts_gone_means_one_read_in_full(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(8, 2)
    kubeconfig = fake_api.write_kubeconfig(str(tmp_path / "kc"))
    warm = sync.Syncer(settings(tmp_path, kubeconfig))
    assert warm.plan().text
    warm.cache._parts.clear()  # as if the pass that read the last lists had failed before modelling
    fake_api.set_endpoints("default", "svc-00003", ready=["127.9.9.9"])
    before = fake_api.request_count()
    plan = warm.plan()
    assert fake_api.request_count() - before == 4  # the poll (2 lists), then both lists in full
    assert warm.cache.parts_built == 8  # built from objects read again in full
    assert plan.text == sync.Syncer(settings(tmp_path, kubeconfig)).plan().text


def test_paged_lists_restarted_on_410_are_read_item_by_item_alike(fake_api, tmp_path):  # noqa: F811
    fake_api.honor_limit_with_rv0 = True
    fake_api.populate(30, 1)
    src = source(fake_api, tmp_path, stand_ins=True, page_size=7)
    first = src.fetch()
    fake_api.set_endpoints("default", "svc-00017", ready=["127.9.9.9"])
    fake_api.expire_next_continue(1)  # the Service list restarts after its first page
    moved = src.fetch(unchanged_since=first.version)
    assert decoded(moved.services) == decoded(moved.endpoint_slices) == {("default", "svc-00017")}
    fresh = source(fake_api, tmp_path, page_size=7).fetch()
    assert [identity(o) for o in moved.services] == [identity(o) for o in fresh.services]
    assert [identity(o) for o in moved.endpoint_slices] == [identity(o) for o in fresh.endpoint_slices]


@pytest.mark.parametrize("fault, message", [("html", r"not JSON \(Content-Type text/html\): '<html>"),
                                            ("honest", "not JSON"), ("short", "truncated")])
def test_a_bad_answer_is_an_error_read_item_by_item_too(fake_api, tmp_path, fault, message):  # noqa: F811
    fake_api.populate(20, 2)
    src = source(fake_api, tmp_path, stand_ins=True)
    first = src.fetch()
    fake_api.set_endpoints("default", "svc-00003", ready=["127.9.9.9"])
    if fault == "html":
        fake_api.html_next(2, path="/apis/discovery.k8s.io/v1/endpointslices")  # the probe, then the read
    else:
        fake_api.truncate_next(2, honest_length=fault == "honest", path="/apis/discovery.k8s.io/v1/endpointslices")
    with pytest.raises(ApiMalformed, match=message):
        src.fetch(unchanged_since=first.version)
    fake_api.clear_faults()
    again = src.fetch(unchanged_since=first.version)  # a good read, as if the bad one had never been
    assert decoded(again.endpoint_slices) == {("default", "svc-00003")}


def test_a_service_turned_to_node_ports_and_a_node_gone_give_the_bytes_of_a_cold_sync(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(6, 2)
    fake_api.add_service("web", "default", [("http", 80, 8080)], type="NodePort")
    fake_api.set_endpoints("default", "web", ready=[{"ip": "127.244.1.5", "node": "node-a"}])
    for name, ip in (("node-a", "127.0.1.11"), ("node-b", "127.0.1.12")):
        fake_api.add_node(name, ip)
    kubeconfig = fake_api.write_kubeconfig(str(tmp_path / "kc"))
    warm = sync.Syncer(settings(tmp_path, kubeconfig))
    assert warm.plan().text

    def cold() -> str:
        return sync.Syncer(settings(tmp_path, kubeconfig)).plan().text

    fake_api.update_service("default", "web", lambda s: s["metadata"].setdefault("annotations", {}).update(
        {"serviceloadbalancer/lb.backend-mode": "nodeport"}))  # now Nodes are listed, slices keep nodeName
    plan = warm.plan()
    assert "127.0.1.12" in plan.text and plan.text == cold()
    fake_api.delete_node("node-b")  # the pool changed: every Service served through nodePorts is built again
    plan = warm.plan()
    assert "127.0.1.12" not in plan.text and plan.text == cold()
