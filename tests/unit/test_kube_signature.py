"""A List's items signature: the same items give the same signature whatever the List's own
resourceVersion; any other items, a paged list or another layout give another (or none)."""
import json

from lbsync.kube import signature


def body(items, **meta):
    return json.dumps({"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "9", **meta},
                       "items": items}, separators=(",", ":")).encode() + b"\n"


ITEMS = [{"metadata": {"name": "a", "uid": "u1", "resourceVersion": "3"}}, {"metadata": {"name": "b"}}]


def test_same_items_under_a_new_list_resource_version_sign_alike():
    assert signature.of(body(ITEMS)) == signature.of(body(ITEMS, resourceVersion="12345"))
    assert signature.of(body(ITEMS))


def test_other_items_sign_otherwise():
    other = [dict(ITEMS[0], spec={"x": 1}), ITEMS[1]]
    assert signature.of(body(other)) != signature.of(body(ITEMS))
    assert signature.of(body(ITEMS[:1])) != signature.of(body(ITEMS))
    assert signature.of(body([])) != signature.of(body(ITEMS))


def test_paged_or_unexpected_bodies_have_no_signature():
    assert signature.of(body(ITEMS, **{"continue": "abc"})) == ""
    reordered = b'{"kind":"ServiceList","items":[],"metadata":{"resourceVersion":"9"}}'
    assert signature.of(reordered) == ""
    assert signature.of(b"<html>oops</html>") == ""


def test_a_body_signed_as_it_streams_in_signs_as_the_whole_body():
    big = body([{"metadata": {"name": "s%d" % i, "uid": "u%d" % i}, "spec": {"ports": [[i], []]}}
                for i in range(500)])
    whole = signature.of(big)
    assert whole and whole == signature.of(big)
    for size in (1, 13, 4096, 4097, 65536):
        signer = signature.Signer()
        for start in range(0, len(big), size):
            signer.update(big[start:start + size])
        assert signer.result() == whole
        assert signer.head == big[:signature.HEAD]  # what head_version reads


def test_a_streamed_paged_or_cut_body_has_no_signature():
    for raw in (body(ITEMS, **{"continue": "abc"}), b'{"metadata":{},"items":[', b""):
        signer = signature.Signer()
        for start in range(0, len(raw), 7):
            signer.update(raw[start:start + 7])
        assert signer.result() == ""
