"""The fake API's watch verb behaves like kube-apiserver's: what lbsync's watch client is tested against.

Raw HTTP (requests, no lbsync code) so a mistake in the client cannot hide one in the fake.
"""
from __future__ import annotations

import json
import time

import pytest
import requests

from tests.fakeapi import FakeKubeApi

pytestmark = pytest.mark.integration
SERVICES = "/api/v1/services"


@pytest.fixture
def api():
    a = FakeKubeApi(anonymous=True, bookmark_interval=0.3).start()
    a.add_service("web", "shop", [("http", 80, 8080)])
    yield a
    a.stop()


def list_rv(api) -> str:
    return requests.get(api.url + SERVICES, timeout=5).json()["metadata"]["resourceVersion"]


def watch(api, rv, **params):
    query = dict(watch="1", resourceVersion=rv, **params)
    return requests.get(api.url + SERVICES, params=query, stream=True, timeout=5)


def lines(resp):
    for line in resp.iter_lines():
        if line:
            yield json.loads(line)


def test_events_then_bookmarks_then_a_clean_end_at_timeout_seconds(api):
    rv = list_rv(api)
    started = time.monotonic()
    resp = watch(api, rv, allowWatchBookmarks="true", timeoutSeconds="2")
    assert resp.status_code == 200 and resp.headers["Transfer-Encoding"] == "chunked"
    api.add_service("api", "shop", [("http", 80, 8080)])
    events = list(lines(resp))  # ends by itself: timeoutSeconds
    assert 1.9 < time.monotonic() - started < 4
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "api"
    assert events[0]["object"]["kind"] == "Service"
    marks = [e for e in events if e["type"] == "BOOKMARK"]
    assert len(marks) >= 3 and set(marks[0]["object"]["metadata"]) == {"resourceVersion"}
    assert int(marks[-1]["object"]["metadata"]["resourceVersion"]) >= int(events[0]["object"]["metadata"]["resourceVersion"])


def test_no_bookmarks_unless_asked(api):
    resp = watch(api, list_rv(api), timeoutSeconds="1")
    assert list(lines(resp)) == []


def test_resuming_from_an_old_rv_replays_what_happened_since(api):
    rv = list_rv(api)
    api.update_service("shop", "web", lambda s: s["spec"].update(type="NodePort"))
    api.delete_service("shop", "web")
    events = list(lines(watch(api, rv, timeoutSeconds="1")))
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(events[0]["object"]["metadata"]["resourceVersion"])


def test_compacted_history_answers_an_error_event_with_410(api):
    rv = list_rv(api)
    api.add_service("api", "shop", [("http", 80, 8080)])
    api.compact()
    started = time.monotonic()
    events = list(lines(watch(api, rv, timeoutSeconds="30")))
    assert time.monotonic() - started < 3  # the stream ends right after the error
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
    assert "too old resource version" in status["message"]


def test_a_namespace_and_selector_watch_sees_only_its_objects(api):
    rv = list_rv(api)
    resp = requests.get(api.url + "/api/v1/namespaces/shop/services", stream=True, timeout=5,
                        params=dict(watch="1", resourceVersion=rv, timeoutSeconds="1", labelSelector="tier=web"))
    api.add_service("other", "elsewhere", [80], labels={"tier": "web"})
    api.add_service("db", "shop", [5432], labels={"tier": "db"})
    api.add_service("front", "shop", [80], labels={"tier": "web"})
    assert [e["object"]["metadata"]["name"] for e in lines(resp)] == ["front"]


def test_dropped_mid_line_leaves_half_an_event_and_no_end(api):
    resp = watch(api, list_rv(api), timeoutSeconds="30")
    deadline = time.monotonic() + 5
    while api.open_watches() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert api.drop_watches_mid_line() == 1
    api.add_service("api", "shop", [("http", 80, 8080)])
    raw = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in resp.iter_content(None):
            raw += chunk
    assert raw and not raw.endswith(b"\n")
    with pytest.raises(ValueError):
        json.loads(raw)


def test_a_silenced_watch_sends_nothing_and_does_not_end(api):
    resp = watch(api, list_rv(api), allowWatchBookmarks="true", timeoutSeconds="1")
    deadline = time.monotonic() + 5
    while api.open_watches() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    api.silence_watches()
    api.add_service("api", "shop", [("http", 80, 8080)])
    resp.raw._fp.fp.raw._sock.settimeout(2.5)  # longer than timeoutSeconds: a live stream would have ended
    with pytest.raises(requests.exceptions.ConnectionError):
        for _ in resp.iter_content(None):
            pass


def test_nodes_are_watched_cluster_wide_only(api):
    api.add_node("node-a", "127.0.0.11")
    rv = requests.get(api.url + "/api/v1/nodes", timeout=5).json()["metadata"]["resourceVersion"]
    resp = requests.get(api.url + "/api/v1/nodes", stream=True, timeout=5,
                        params=dict(watch="1", resourceVersion=rv, timeoutSeconds="1"))
    api.add_node("node-b", "127.0.0.12")
    api.update_node("node-a", lambda n: n["status"]["conditions"][0].update(lastHeartbeatTime="2026-11-29T15:10:00Z"))
    api.delete_node("node-b")
    api.add_service("db", "shop", [5432])  # another resource: not in this stream
    events = [(e["type"], e["object"]["kind"], e["object"]["metadata"]["name"]) for e in lines(resp)]
    assert events == [("ADDED", "Node", "node-b"), ("MODIFIED", "Node", "node-a"), ("DELETED", "Node", "node-b")]
    namespaced = requests.get(api.url + "/api/v1/namespaces/shop/nodes", params=dict(watch="1"), timeout=5)
    assert namespaced.status_code == 404  # as kube-apiserver: Nodes have no namespace
