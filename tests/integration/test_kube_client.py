"""lbsync.kube.client.ApiSource against the fake API server over real loopback HTTP(S)."""
from __future__ import annotations

import sys
import time

import pytest

from lbsync.exceptions import (ApiError, ApiForbidden, ApiGone, ApiMalformed, ApiNotFound,
                               ApiServerError, ApiTooManyRequests, ApiUnauthorized, ApiUnreachable)
from lbsync.kube import ApiSource, credentials
from tests.fakeapi import DEFAULT_TOKEN, FakeKubeApi
from tests.fakeapi.fixtures import fake_api, fake_api_tls, fake_tls_material  # noqa: F401
from tests.fakeapi.samples import wso2_cluster
from tests.fakeapi.tls import make_ca

pytestmark = pytest.mark.integration
SERVICES, SLICES, ENDPOINTS = "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices", "/api/v1/endpoints"


def source(api: FakeKubeApi, tmp_path, *, auth: str = "token", kc: dict = None, **kwargs) -> ApiSource:
    path = api.write_kubeconfig(str(tmp_path / ("kc-%s" % auth)), auth=auth, **(kc or {}))
    return ApiSource(credentials.load(path, env={}), **kwargs)


def names(objs) -> set:
    return {"%s/%s" % (o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs}


@pytest.fixture
def wso2(fake_api_tls):  # noqa: F811
    return wso2_cluster(fake_api_tls)


# -- TLS and authentication -----------------------------------------------------------------
def test_tls_token_fetches_services_and_slices(wso2, tmp_path):
    snap = source(wso2, tmp_path).fetch()
    assert names(snap.services) == {"default/kubernetes", "kube-system/kube-dns", "wso2/wso2am",
                                    "wso2/wso2am-analytics-worker", "wso2/wso2am-mysql"}
    assert len(snap.endpoint_slices) == 5 and snap.endpoints == ()
    am = next(s for s in snap.endpoint_slices if s["metadata"]["name"].startswith("wso2am-")
              and s["metadata"]["labels"]["kubernetes.io/service-name"] == "wso2am")
    assert [e["conditions"]["ready"] for e in am["endpoints"]] == [True, True, False]
    assert {p["port"] for p in am["ports"]} == {9443, 9763, 8243, 8280, 7611, 7711}
    assert snap.services[0]["kind"] == "Service" and am["apiVersion"] == "discovery.k8s.io/v1"
    assert snap.requests == 2 and snap.bytes == wso2.bytes_sent > 1000
    first = wso2.requests[0]
    assert first.query.get("resourceVersion") == "0" and first.query["limit"] == "500"
    assert first.headers["User-Agent"].startswith("lbsync/")
    assert first.user == "system:serviceaccount:lb:lbsync"


def test_wrong_ca_is_rejected(wso2, tmp_path):
    other_ca = make_ca(str(tmp_path / "other"), cn="someone-else")
    with pytest.raises(ApiUnreachable, match=r"TLS verification failed \(wrong CA\?\)") as info:
        source(wso2, tmp_path, kc={"ca_file": other_ca}).fetch()
    assert "https://127.0.0.1:%d/api/v1/services" % wso2.port in str(info.value)
    assert isinstance(info.value.__cause__, Exception) and info.value.status is None


def test_tls_server_name(wso2, tmp_path):
    url = wso2.url
    assert source(wso2, tmp_path, kc={"tls_server_name": "localhost"}).fetch().services
    with pytest.raises(ApiUnreachable, match="does not match the host name") as info:
        source(wso2, tmp_path, kc={"tls_server_name": "wrong.example"}).fetch()
    assert "resourceVersion" not in str(info.value) and url in str(info.value)


@pytest.mark.parametrize("inline", [False, True])
def test_client_certificate_auth(wso2, tmp_path, inline):
    snap = source(wso2, tmp_path, auth="cert", kc={"inline": inline}).fetch()
    assert len(snap.services) == 5
    assert wso2.requests[-1].user == "lbsync-client"
    assert "Authorization" not in wso2.requests[-1].headers


def test_no_credentials_is_unauthorized(wso2, tmp_path):
    with pytest.raises(ApiUnauthorized) as info:
        source(wso2, tmp_path, auth="none").fetch()
    text = str(info.value)
    assert "HTTP 401 Unauthorized: Unauthorized" in text and "check your credentials" in text
    assert info.value.status == 401 and info.value.reason == "Unauthorized"


def test_token_never_in_errors(wso2, tmp_path):
    wso2.set_tokens(["something-else"])
    with pytest.raises(ApiUnauthorized) as info:
        source(wso2, tmp_path, kc={"token": DEFAULT_TOKEN}).fetch()
    assert DEFAULT_TOKEN not in str(info.value) and DEFAULT_TOKEN not in repr(info.value)


def test_token_file_rotation(wso2, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("old-token")
    wso2.set_tokens(["old-token"])
    src = source(wso2, tmp_path, auth="none", kc={"token_file": str(token_file)})
    assert src.fetch().requests == 2
    token_file.write_text("new-token-longer")  # the kubelet rotated the projected token...
    wso2.set_tokens(["new-token-longer"])  # ...and the old one stopped working
    snap = src.fetch()
    assert snap.requests == 3 and len(snap.services) == 5  # one 401, re-read, retried
    assert [r.user for r in wso2.requests[-3:]] == ["", "system:serviceaccount:lb:lbsync",
                                                    "system:serviceaccount:lb:lbsync"]


def test_exec_plugin_rerun_on_401(wso2, tmp_path):
    token_file = tmp_path / "issued"
    token_file.write_text("exec-1")
    wso2.set_tokens(["exec-1"])
    script = tmp_path / "plugin.py"
    script.write_text("import json,sys\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',"
                      " 'kind': 'ExecCredential', 'status': {'token': open(sys.argv[1]).read()}}))\n")
    spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
            "args": [str(script), str(token_file)], "interactiveMode": "Never"}
    src = source(wso2, tmp_path, auth="none", kc={"exec_spec": spec})
    src.fetch()
    token_file.write_text("exec-2")
    wso2.set_tokens(["exec-2"])
    assert src.fetch().requests == 3


# -- paging, consistency, cost ---------------------------------------------------------------
def test_paging_follows_continue_tokens(fake_api, tmp_path):  # noqa: F811
    fake_api.honor_limit_with_rv0 = True  # newer servers page even from the cache
    fake_api.populate(45, 2, namespaces=["a", "b", "c"])
    snap = source(fake_api, tmp_path, page_size=10).fetch()
    assert len(snap.services) == 45 and len(snap.endpoint_slices) == 45
    assert len(names(snap.services)) == 45
    assert snap.requests == 10 and fake_api.request_count(SERVICES) == 5
    queries = [r.query for r in fake_api.requests if r.path == SERVICES]
    assert queries[0] == {"limit": "10", "resourceVersion": "0"}
    assert all("continue" in q and "resourceVersion" not in q for q in queries[1:])


def test_old_servers_ignore_limit_with_resource_version_0(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(45, 2)
    snap = source(fake_api, tmp_path, page_size=10).fetch()
    assert len(snap.services) == 45 and snap.requests == 2


def test_constant_requests_at_scale(fake_api, tmp_path):  # noqa: F811
    fake_api.honor_limit_with_rv0 = True
    fake_api.populate(1000, 10, namespaces=["ns-%d" % i for i in range(7)])
    src = source(fake_api, tmp_path, page_size=500)
    started = time.monotonic()
    snap = src.fetch()
    assert time.monotonic() - started < 3.0
    assert len(snap.services) == 1000 and len(snap.endpoint_slices) == 1000
    assert snap.requests == 4 and src.fetch().requests == 4
    fake_api.populate(1, 10)  # still 2 pages each (1001 items = 3 pages of 500: one more each)
    assert src.fetch().requests == 6


def test_fake_serves_large_lists_fast(fake_api):  # noqa: F811
    import requests
    fake_api.populate(1000, 10)
    for path in (SERVICES, SLICES, ENDPOINTS):
        started = time.monotonic()
        resp = requests.get(fake_api.url + path, timeout=5)
        assert len(resp.json()["items"]) == 1000
        assert time.monotonic() - started < 1.0


def test_expired_continue_restarts_the_list(fake_api, tmp_path):  # noqa: F811
    fake_api.honor_limit_with_rv0 = True
    fake_api.populate(30, 1)
    fake_api.expire_next_continue(1)
    snap = source(fake_api, tmp_path, page_size=10).fetch()
    assert len(snap.services) == 30
    # services: page 1, 410 on page 2, restart with 3 pages; slices: 3 pages
    assert fake_api.request_count(SERVICES) == 5 and snap.requests == 8


def test_compaction_between_pages_restarts_consistently(fake_api, tmp_path):  # noqa: F811
    fake_api.honor_limit_with_rv0 = True
    fake_api.populate(30, 1)
    done = []

    def compact_once(record):
        if record.path == SERVICES and "continue" in record.query and not done:
            done.append(1)
            fake_api.add_service("late-arrival", "default")
            fake_api.expire_continue_tokens()

    fake_api.on_request = compact_once
    snap = source(fake_api, tmp_path, page_size=10).fetch()
    assert len(snap.services) == 31 and "default/late-arrival" in names(snap.services)


def test_gone_three_times_gives_up(fake_api, tmp_path):  # noqa: F811
    fake_api.honor_limit_with_rv0 = True
    fake_api.populate(30, 1)
    fake_api.expire_next_continue(3)
    with pytest.raises(ApiGone, match="HTTP 410 Expired: The provided continue parameter is too old"):
        source(fake_api, tmp_path, page_size=10).fetch()


# -- EndpointSlices and the Endpoints fall back ---------------------------------------------
def test_endpoints_fallback_when_slices_not_served(wso2, tmp_path):
    wso2.serve_endpointslices = False
    src = source(wso2, tmp_path)
    snap = src.fetch()
    assert snap.endpoint_slices == () and names(snap.endpoints) == names(snap.services)
    am = next(e for e in snap.endpoints if e["metadata"]["name"] == "wso2am")
    assert len(am["subsets"][0]["addresses"]) == 2 and len(am["subsets"][0]["notReadyAddresses"]) == 1
    assert snap.requests == 3 and src.endpoints_mode == "endpoints"
    assert src.fetch().requests == 2  # the choice is remembered
    assert wso2.request_count(SLICES) == 1


def test_endpoints_fallback_retries_slices_after_ttl(wso2, tmp_path):
    wso2.serve_endpointslices = False
    src = source(wso2, tmp_path, fallback_ttl=0.0)
    src.fetch()
    wso2.serve_endpointslices = True
    snap = src.fetch()
    assert len(snap.endpoint_slices) == 5 and snap.endpoints == () and src.endpoints_mode == "endpointslices"


def test_endpoints_fallback_when_slices_forbidden(wso2, tmp_path):
    wso2.deny("endpointslices", token=DEFAULT_TOKEN)
    snap = source(wso2, tmp_path).fetch()
    assert snap.endpoint_slices == () and len(snap.endpoints) == 5 and snap.requests == 3


def test_both_forbidden_names_the_missing_permission(wso2, tmp_path):
    wso2.deny("endpointslices")
    wso2.deny("endpoints")
    with pytest.raises(ApiForbidden) as info:
        source(wso2, tmp_path, namespaces=["wso2"]).fetch()
    text = str(info.value)
    assert ('endpoints is forbidden: User "system:serviceaccount:lb:lbsync" cannot list resource '
            '"endpoints" in API group "" in the namespace "wso2"') in text
    assert 'verbs ["list"]' in text and "ClusterRole" in text and info.value.status == 403


# -- filters ---------------------------------------------------------------------------------
def test_namespace_filter(wso2, tmp_path):
    snap = source(wso2, tmp_path, namespaces=["wso2", "absent"]).fetch()
    assert names(snap.services) == {"wso2/wso2am", "wso2/wso2am-analytics-worker", "wso2/wso2am-mysql"}
    assert {s["metadata"]["namespace"] for s in snap.endpoint_slices} == {"wso2"}
    assert snap.requests == 4
    assert wso2.request_count("/api/v1/namespaces/wso2/services") == 1
    assert wso2.request_count("/apis/discovery.k8s.io/v1/namespaces/absent/endpointslices") == 1


@pytest.mark.parametrize("selector, expected", [
    ("app in (wso2am,wso2am-mysql)", {"wso2/wso2am", "wso2/wso2am-mysql"}),
    ("app.kubernetes.io/part-of=wso2am,app!=wso2am", {"wso2/wso2am-analytics-worker"}),
    ("k8s-app", {"kube-system/kube-dns"}),
    ("!app,!k8s-app", {"default/kubernetes"}),
    ("app notin (wso2am)", {"wso2/wso2am-analytics-worker", "wso2/wso2am-mysql",  # and those
                            "default/kubernetes", "kube-system/kube-dns"}),  # without the label
])
def test_selector_filters_services_and_their_slices(wso2, tmp_path, selector, expected):
    snap = source(wso2, tmp_path, selector=selector).fetch()
    assert names(snap.services) == expected
    owners = {"%s/%s" % (s["metadata"]["namespace"], s["metadata"]["labels"]["kubernetes.io/service-name"])
              for s in snap.endpoint_slices}
    assert owners == expected
    assert wso2.requests[0].query["labelSelector"] == selector
    assert "labelSelector" not in wso2.requests[-1].query


def test_bad_selector_is_a_400(wso2, tmp_path):
    with pytest.raises(ApiError, match="HTTP 400 BadRequest: unable to parse requirement") as info:
        source(wso2, tmp_path, selector="app in ()").fetch()
    assert info.value.status == 400


# -- error statuses ----------------------------------------------------------------------------
@pytest.mark.parametrize("status, cls, advice", [
    (403, ApiForbidden, "missing permission"),
    (404, ApiNotFound, "does not serve"),
    (429, ApiTooManyRequests, "API server overloaded or failing (Retry-After 7s)"),
    (500, ApiServerError, "API server overloaded or failing"),
    (503, ApiServerError, "API server overloaded or failing"),
])
def test_status_mapped_to_error_class(fake_api, tmp_path, status, cls, advice):  # noqa: F811
    fake_api.fail_next(1, status, message="injected failure %d" % status, retry_after=7 if status == 429 else None)
    with pytest.raises(cls) as info:
        source(fake_api, tmp_path).fetch()
    text = str(info.value)
    assert "GET %s/api/v1/services: HTTP %d" % (fake_api.url, status) in text
    assert "injected failure %d" % status in text and advice in text
    assert info.value.status == status and info.value.url == fake_api.url + SERVICES
    if status == 429:
        assert info.value.retry_after == 7.0


def test_error_without_status_body(fake_api, tmp_path):  # noqa: F811
    fake_api.fail_next(1, 502, body="html")
    with pytest.raises(ApiServerError, match=r"HTTP 502: Bad Gateway, body '<html><body><h1>502"):
        source(fake_api, tmp_path).fetch()


def test_html_instead_of_json(fake_api, tmp_path):  # noqa: F811
    fake_api.html_next(1)
    with pytest.raises(ApiMalformed, match=r"not JSON \(Content-Type text/html\): '<html>"):
        source(fake_api, tmp_path).fetch()


@pytest.mark.parametrize("honest", [True, False])
def test_truncated_body(fake_api, tmp_path, honest):  # noqa: F811
    fake_api.populate(20, 2)
    fake_api.truncate_next(1, honest_length=honest)
    with pytest.raises(ApiMalformed, match="not JSON" if honest else "truncated"):
        source(fake_api, tmp_path).fetch()


def test_dropped_connection(fake_api, tmp_path):  # noqa: F811
    fake_api.drop_next(1)
    with pytest.raises(ApiUnreachable, match="cannot connect"):
        source(fake_api, tmp_path).fetch()


def test_timeout_with_slow_server(fake_api, tmp_path):  # noqa: F811
    fake_api.set_delay(2.0, path=SLICES)
    src = source(fake_api, tmp_path, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ApiUnreachable, match=r"no answer within 0.3s \(timeout\)") as info:
        src.fetch()
    assert time.monotonic() - started < 1.5
    assert info.value.url.endswith(SLICES)


def test_server_down_then_back(fake_api, tmp_path):  # noqa: F811
    src = source(fake_api, tmp_path)
    src.fetch()
    fake_api.stop()
    with pytest.raises(ApiUnreachable, match="cannot connect"):
        src.fetch()
    fake_api.start()
    assert src.fetch().requests == 2


def test_source_and_credentials_repr_hide_token(fake_api_tls, tmp_path):  # noqa: F811
    src = source(fake_api_tls, tmp_path)
    assert DEFAULT_TOKEN not in repr(src) and "auth=token" in repr(src)


# -- Snapshot.version and slim decoding ----------------------------------------------------------
def test_version_changes_with_any_listed_object(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(20, 3)
    src = source(fake_api, tmp_path)
    first = src.fetch()
    assert first.version.startswith("endpointslices:")
    assert src.fetch().version == first.version
    fake_api.set_endpoints("default", "svc-00003", ready=["127.9.9.9"])
    moved = src.fetch()
    assert moved.version != first.version
    assert any(e["addresses"] == ["127.9.9.9"] for s in moved.endpoint_slices for e in s["endpoints"] or ())
    fake_api.update_service("default", "svc-00001", lambda s: s["metadata"].setdefault("labels", {}).update(x="y"))
    assert src.fetch().version != moved.version


def test_unchanged_cluster_is_not_decoded_and_a_change_is(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(50, 3, namespaces=["a", "b"])
    src = source(fake_api, tmp_path)
    first = src.fetch()
    same = src.fetch(unchanged_since=first.version)
    assert same.version == first.version and same.requests == 2 and same.bytes > 0
    assert same.services == () and same.endpoint_slices == ()  # nothing was decoded
    fake_api.set_endpoints("b", "svc-00003", ready=["127.9.9.9"])
    moved = src.fetch(unchanged_since=first.version)
    assert moved.version != first.version and len(moved.services) == 50
    assert any(e["addresses"] == ["127.9.9.9"] for sl in moved.endpoint_slices for e in sl["endpoints"] or ())
    # per namespace, and never across an endpoints-mode change
    per_ns = source(fake_api, tmp_path, namespaces=["a", "b"])
    v = per_ns.fetch().version
    assert per_ns.fetch(unchanged_since=v).services == () and per_ns.fetch(unchanged_since=v).version == v
    fake_api.deny("endpointslices")
    assert per_ns.fetch(unchanged_since=v).version.startswith("endpoints:")


@pytest.mark.parametrize("body, rv", [
    (b'{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"42"},"items":[]}', "42"),
    (b'{"kind":"ServiceList","metadata":{"resourceVersion":"42","continue":"abc"},"items":[]}', ""),
    (b'{"kind":"ServiceList","items":[{"metadata":{"resourceVersion":"7"}}],"metadata":{}}', ""),
    (b'<html>not json</html>', ""),
])
def test_list_version_is_read_from_the_head_of_the_body(body, rv):
    from lbsync.kube.errors import head_version
    assert head_version(body) == rv


def test_version_per_namespace_paged_and_fallback(fake_api, tmp_path):  # noqa: F811
    fake_api.honor_limit_with_rv0 = True
    fake_api.populate(30, 2, namespaces=["a", "b"])
    src = source(fake_api, tmp_path, namespaces=["a", "b"], page_size=10)
    snap = src.fetch()
    assert snap.requests == 8 and len(snap.services) == 30  # 2 pages per list and namespace
    assert snap.version.count(",") == 3 and src.fetch().version == snap.version
    fake_api.deny("endpointslices")
    fallback = src.fetch()
    assert fallback.version.startswith("endpoints:") and fallback.version.count(",") == 3
    assert len(fallback.endpoints) == 30


def test_endpoint_readiness_survives_slim_decoding(fake_api, tmp_path):  # noqa: F811
    fake_api.add_service("web", "shop", [("http", 80, 8080)])
    fake_api.set_endpoints("shop", "web", ready=["127.0.0.1"], not_ready=["127.0.0.2"], terminating=["127.0.0.3"])
    (es,) = [s for s in source(fake_api, tmp_path).fetch().endpoint_slices if s["metadata"]["name"].startswith("web")]
    by_ip = {e["addresses"][0]: e["conditions"] for e in es["endpoints"]}
    assert by_ip == {"127.0.0.1": {"ready": True}, "127.0.0.2": {"ready": False}, "127.0.0.3": {"ready": False}}


def test_fields_lbsync_never_reads_are_dropped_while_decoding(fake_api, tmp_path):  # noqa: F811
    fake_api.add_service("web", "shop", [("http", 80, 8080)], annotations={
        "serviceloadbalancer/lb.host": "web.example.com",
        "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Service"}'})
    fake_api.set_endpoints("shop", "web", ready=["127.0.0.1"])
    snap = source(fake_api, tmp_path).fetch()
    svc = next(s for s in snap.services if s["metadata"]["name"] == "web")
    assert svc["metadata"]["annotations"] == {"serviceloadbalancer/lb.host": "web.example.com"}
    (es,) = [s for s in snap.endpoint_slices if s["metadata"]["namespace"] == "shop"]
    assert es["endpoints"] == [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]  # what lbsync reads
    assert "ownerReferences" not in es["metadata"] and es["metadata"]["labels"]

