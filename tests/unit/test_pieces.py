"""lbsync.kube.pieces: a List's items cut from its text and known by digest; a cut in the
wrong place is always caught (the page is then decoded whole), never handed on."""
from __future__ import annotations

import json

from lbsync.kube import cutter, errors, pieces
from lbsync.snapshot import Unread


def item(name: str, **more) -> dict:
    return dict({"metadata": {"name": name, "namespace": "ns", "uid": "u-" + name, "resourceVersion": "1",
                              "labels": {"kubernetes.io/service-name": name}}}, **more)


def listed(items, **dumps) -> str:
    return json.dumps({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                       "metadata": {"resourceVersion": "7"}, "items": items}, **dumps)


def cut(text: str, chunk: int = 7) -> cutter.Cut:
    """The text cut as if it streamed in, `chunk` bytes at a time."""
    c, body = cutter.Cutter(), text.encode()
    for i in range(0, len(body), chunk):
        c.feed(body[i:i + chunk])
    return c.finish()


def reader() -> pieces.Reader:
    r = pieces.Reader(lambda o: ("ns", o["metadata"]["name"]),
                      lambda o: pieces.stand_in(o, label="kubernetes.io/service-name"))
    r.begin(errors.UNUSED_KEYS)
    return r


COMPACT = {"separators": (",", ":")}  # as the API server writes


def test_items_are_cut_where_they_begin_and_decode_alike():
    objs = [item("a", endpoints=[{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}]), item("b"), item("c")]
    text = listed(objs, **COMPACT)
    found = cut(text)
    assert found.fields["metadata"] == {"resourceVersion": "7"} and found.body() == text.encode()
    assert [json.loads(bytes(x)) for x in found.items] == objs
    r = reader()
    assert r.page(found, errors.items_decoder()) == {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                                                    "metadata": {"resourceVersion": "7"}, "items": []}
    assert r.items(None, errors.items_decoder()) == objs


def test_an_empty_list_has_no_items():
    found = cut(listed([], **COMPACT))
    assert found.items == [] and found.fields is not None
    r = reader()
    assert r.page(found, errors.items_decoder()) is not None and r.items(None, errors.items_decoder()) == []


def test_unchanged_items_come_back_as_stand_ins_and_changed_ones_whole():
    decode = errors.items_decoder()
    r = reader()
    r.page(cut(listed([item("a"), item("b"), item("c")], **COMPACT)), decode)
    assert r.dirty() == {("ns", "a"), ("ns", "b"), ("ns", "c")}
    r.items(set(), decode)
    r.commit()
    r.begin(errors.UNUSED_KEYS)
    b2 = item("b", endpoints=[{"addresses": ["10.0.0.9"]}])
    r.page(cut(listed([item("a"), b2], **COMPACT)), decode)  # b changed, c gone
    assert r.dirty() == {("ns", "b"), ("ns", "c")}
    got = r.items({("ns", "b")}, decode)
    assert isinstance(got[0], Unread) and got[0]["metadata"]["uid"] == "u-a" and got[1] == b2
    assert got[0]["metadata"]["labels"] == {"kubernetes.io/service-name": "a"}


def test_an_unchanged_item_of_a_dirty_service_is_decoded_again():
    decode = errors.items_decoder()
    r = reader()
    r.page(cut(listed([item("a"), item("b")], **COMPACT)), decode)
    r.items(None, decode)
    r.commit()
    r.begin(errors.UNUSED_KEYS)
    r.page(cut(listed([item("a"), item("b")], **COMPACT)), decode)
    assert r.dirty() == set()
    got = r.items({("ns", "a")}, decode)
    assert got[0] == item("a") and not isinstance(got[0], Unread) and isinstance(got[1], Unread)


def test_another_layout_is_refused_and_decoded_whole_by_the_caller():
    found = cut(listed([item("a"), item("b")], indent=1))
    assert len(found.items) == 1 and reader().page(found, errors.items_decoder()) is None
    assert found.body() == listed([item("a"), item("b")], indent=1).encode()
    assert cut("[1, 2]").fields is None and cut("[1, 2]").body() == b"[1, 2]"


def test_a_cut_inside_an_item_is_caught():
    decode = errors.items_decoder()
    # a nested array whose second object starts with "metadata": the cutter cuts there too
    nested = dict(item("a"), extra=[{"x": 1}, {"metadata": {"y": 2}}])
    text = listed([nested, item("b")], **COMPACT)
    assert len(cut(text).items) == 3
    assert reader().page(cut(text), decode) is None
    # the same count of cuts and items, misaligned: an item that does not begin with metadata
    typed = {"kind": "X", "metadata": {"name": "c"}}
    text = listed([nested, typed], **COMPACT)
    assert len(cut(text).items) == 2 and reader().page(cut(text), decode) is None


def test_a_value_that_looks_like_a_cut_is_no_cut():
    decode = errors.items_decoder()
    tricky = item("a")
    tricky["metadata"]["annotations"] = {"note": '},{"metadata":{"name":"evil"}'}
    text = listed([tricky, item("b")], **COMPACT)
    assert len(cut(text).items) == 2
    r = reader()
    r.page(cut(text), decode)
    assert r.items(None, decode) == [tricky, item("b")]


def test_unused_fields_are_dropped_as_the_whole_list_decoder_drops_them():
    objs = [dict(item("a"), endpoints=[{"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod"}, "nodeName": "n1",
                                        "conditions": {"ready": True, "serving": True}}])]
    objs[0]["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    text = listed(objs, **COMPACT)
    r = reader()
    r.page(cut(text), errors.items_decoder())
    assert r.items(None, errors.items_decoder()) == errors.decoder()(text)["items"]
    assert "managedFields" not in r.items(None, errors.items_decoder())[0]["metadata"]


def test_items_decode_alike_however_they_are_batched(monkeypatch):
    objs = [item("i%d" % n, endpoints=[{"addresses": ["10.0.%d.1" % n], "conditions": {"ready": n % 2 == 0}}])
            for n in range(30)]
    text = listed(objs, **COMPACT)
    for size in (1, 200, 1 << 20):
        monkeypatch.setattr(pieces, "_BATCH", size)
        for chunk in (1, 64, 1 << 16):
            r = reader()
            assert r.page(cut(text, chunk), errors.items_decoder()) is not None
            assert r.items(None, errors.items_decoder()) == objs


def test_the_decoders_drop_exactly_the_unused_keys_and_share_one_condition_per_readiness():
    doc = {"metadata": {"name": "a", "annotations": {errors.UNUSED_ANNOTATION: "{}", "x": "1"},
                        "managedFields": [{"manager": "kubectl"}], "ownerReferences": [], "labels": {"zone": "z"}},
           "endpoints": [{"addresses": ["127.0.0.4"], "nodeName": "n1", "targetRef": {"kind": "Pod"}, "zone": "z",
                          "conditions": {"ready": True, "serving": True, "terminating": False}},
                         {"addresses": ["127.0.0.5"], "nodeName": "n2", "conditions": {"ready": True}}]}
    text = json.dumps(doc)
    plain = errors.decoder()(text)
    assert plain["metadata"]["annotations"] == {"x": "1"} and "managedFields" not in plain["metadata"]
    assert [sorted(e) for e in plain["endpoints"]] == [["addresses", "conditions"]] * 2
    assert plain["endpoints"][0]["conditions"] is plain["endpoints"][1]["conditions"] == {"ready": True}
    on_nodes = errors.decoder(errors.keeping(("nodeName",)))(text)
    assert [e["nodeName"] for e in on_nodes["endpoints"]] == ["n1", "n2"]
    assert "targetRef" not in on_nodes["endpoints"][0]
    assert errors.items_decoder(errors.keeping(("nodeName",)))("[%s]" % text) == [on_nodes]


def test_labels_and_annotations_keep_every_key_of_the_users_but_kubectls_copy():
    node = {"metadata": {"name": "n1", "labels": {"zone": "edge", "status": "ok", "ready": "true", "serving": "x",
                                                   "selector": "a"},
                         "annotations": {"finalizers": "f", errors.UNUSED_ANNOTATION: "{}"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.9"}], "images": [{"names": ["x"]}]}}
    got = errors.decoder(errors.keeping(("status",)))(json.dumps(node))
    assert got["metadata"]["labels"] == node["metadata"]["labels"]
    assert got["metadata"]["annotations"] == {"finalizers": "f"}
    assert got["status"] == {"addresses": [{"type": "InternalIP", "address": "127.0.0.9"}]}  # images: never read
    assert errors.decoder()('{"labels": {}, "conditions": {}}') == {"labels": {}, "conditions": {}}


def test_a_slice_labelled_like_endpoint_conditions_keeps_its_service_name():
    """The EndpointSlice controller copies the Service's labels onto its slices."""
    labels = {"kubernetes.io/service-name": "web", "serving": "true", "ready": "yes"}
    doc = {"metadata": {"name": "web-abc", "labels": labels},
           "endpoints": [{"addresses": ["127.0.0.4"], "conditions": {"ready": True, "serving": True}},
                         {"addresses": ["127.0.0.5"], "conditions": {"ready": False}},
                         {"addresses": ["127.0.0.6"], "conditions": {}}]}
    for decode in (errors.decoder(), lambda t: errors.items_decoder()("[%s]" % t)[0]):
        got = decode(json.dumps(doc))
        assert got["metadata"]["labels"] == labels
        assert [e["conditions"] for e in got["endpoints"]] == [{"ready": True}, {"ready": False}, {}]
