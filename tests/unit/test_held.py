"""lbsync.kube.held: a changed List's body, held from a poll's probe for that poll's fetch,
once, and nothing kept after it."""
from __future__ import annotations

import json
import tracemalloc

from lbsync.kube import cutter, held

SLICES = held.key("/apis/discovery.k8s.io/v1/endpointslices", {"limit": "500", "resourceVersion": "0"})
SERVICES = held.key("/api/v1/services", {"resourceVersion": "0", "limit": "500"})


def body_of(*names: str) -> bytes:
    items = [{"metadata": {"name": n, "uid": "u-" + n, "resourceVersion": "1"}} for n in names]
    return json.dumps({"kind": "List", "metadata": {"resourceVersion": "9"}, "items": items},
                      separators=(",", ":")).encode()


def held_body(body: held.Body, data: bytes, where=SLICES, chunk: int = 5) -> None:
    body.start()
    for i in range(0, len(data), chunk):
        body.add(data[i:i + chunk])
    body.hold(where, "sig", None)


def test_the_key_is_the_path_and_the_query_in_any_order():
    assert held.key("/p", {"a": "1", "b": "2"}) == held.key("/p", {"b": "2", "a": "1"})
    assert held.key("/p", {"a": "1"}) != held.key("/q", {"a": "1"}) != held.key("/p", {"a": "2"})


def test_a_body_is_taken_once_and_only_for_its_own_list():
    body = held.Body()
    held_body(body, body_of("a", "b"))
    assert body.take(SERVICES) is None  # another list: not this body, and it stays held
    data, signature, resp = body.take(SLICES)
    assert bytes(data) == body_of("a", "b") and signature == "sig" and resp is None
    assert body.take(SLICES) is None  # one fetch only
    held_body(body, body_of("a"))
    body.drop()  # a new poll
    assert body.take(SLICES) is None


def test_a_body_not_held_is_never_taken():
    body = held.Body()
    body.start()
    body.add(body_of("a"))  # a probe that found the List unchanged does not hold it
    assert body.take(SLICES) is None


def test_a_taken_body_is_never_written_by_the_next_probe():
    body = held.Body()
    held_body(body, body_of("c", "d"))
    first, _, _ = body.take(SLICES)
    cut = cutter.Cutter()
    cut.feed(first)
    items = cut.finish().items  # views into the buffer, as a poll's reader holds them
    assert isinstance(items[0], memoryview)  # (the last item is copied out with the List's tail)
    held_body(body, body_of("dddd", "eeee", "ffff"))
    second, _, _ = body.take(SLICES)
    assert second is not first and bytes(second) == body_of("dddd", "eeee", "ffff")
    assert bytes(first) == body_of("c", "d") and json.loads(bytes(items[0]))["metadata"]["name"] == "c"


def test_no_memory_is_kept_once_a_body_is_taken_or_dropped():
    big = body_of(*("item-%06d" % i for i in range(40000)))  # about 2.6 MB
    body = held.Body()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        held_body(body, big, chunk=1 << 16)
        assert tracemalloc.get_traced_memory()[0] - base > len(big)
        body.drop()  # a poll that found the List unchanged, or a new poll
        assert tracemalloc.get_traced_memory()[0] - base < 100_000
        held_body(body, big, chunk=1 << 16)
        taken = body.take(SLICES)[0]
        assert len(taken) == len(big)
        del taken  # the fetch is done with it
        assert tracemalloc.get_traced_memory()[0] - base < 100_000
    finally:
        tracemalloc.stop()


def test_a_held_buffer_is_cut_like_its_chunks():
    data = body_of(*("item-%d" % i for i in range(30)))
    body = held.Body()
    held_body(body, data, chunk=64)
    whole = cutter.Cutter()
    whole.feed(body.take(SLICES)[0])
    streamed = cutter.Cutter()
    for i in range(0, len(data), 11):
        streamed.feed(data[i:i + 11])
    a, b = whole.finish(), streamed.finish()
    assert a.fields == b.fields and a.fields is not None
    assert [bytes(x) for x in a.items] == [bytes(x) for x in b.items] and len(a.items) == 30
    assert a.body() == b.body() == data
    other = bytearray(b'{"items":[{"no":"metadata first"}]}')  # another layout: whole, copied
    c = cutter.Cutter()
    c.feed(other)
    found = c.finish()
    other[:] = b"x" * len(other)  # the buffer written over by a later poll
    assert found.fields is None and found.body() == b'{"items":[{"no":"metadata first"}]}'
