"""Real traffic through the real haproxy, on a config lbsync rendered from a cluster file.

One cluster, one `lbsync --once`, one HAProxy in master-worker mode; small HTTP(S)
backends on 127.0.0.x stand in for Pods. Each test sends real requests and checks
which backend answered and what it received.
"""
import json
import os
import socket
import ssl

import pytest
import yaml

from lbsync import cli
from tests.cluster import slice_, svc
from tests.helpers.backends import Backend, free_port, http_get
from tests.helpers.haproxy_proc import HAProxyProcess, haproxy_available

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]
CERT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "golden", "_tls", "lb.pem")


class Cluster:
    """The backends, the rendered config and the running HAProxy of this module."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.ports = {k: free_port() for k in ("http", "https", "stats", "tcp")}
        self.backends = {}
        self.objects = []

    def pods(self, service, ips, *, ready=True, tls=False, port=None):
        port = port or free_port("127.0.0.1")
        for ip in ips:
            self.backends[ip] = Backend(f"{service}@{ip}", host=ip, port=port,
                                        tls_cert=CERT if tls else None).start()
        return port

    def add(self, *objects):
        self.objects.extend(objects)

    def sync(self):
        path = os.path.join(self.tmp, "cluster.yaml")
        with open(path, "w") as f:
            yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": self.objects}, f)
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        code = cli.main(["--source", path, "--haproxy-config", cfg, "--once", "--log-format", "json",
                         "--http-bind", f"127.0.0.1:{self.ports['http']}",
                         "--https-bind", f"127.0.0.1:{self.ports['https']}",
                         "--stats-bind", f"127.0.0.1:{self.ports['stats']}",
                         "--tcp-bind-address", "127.0.0.1", "--tls-cert", CERT,
                         "--deny-networks", "none", "--check-interval", "500ms"])
        assert code == 0
        return cfg


@pytest.fixture(scope="module")
def lb(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("routing")))
    p = c.pods("web", ["127.0.0.2", "127.0.0.3"])
    c.pods("web", ["127.0.0.4"], port=p)  # a Pod that is not ready: must never get traffic
    c.add(svc("web", "shop", annotations={"lb.host": "shop.example.com"}),
          slice_("web", "shop", ready=["127.0.0.2", "127.0.0.3"], not_ready=["127.0.0.4"], ports=[("http", p)]))
    p = c.pods("sticky", ["127.0.0.5", "127.0.0.6"])
    c.add(svc("sticky", "shop", annotations={"lb.host": "sticky.example.com", "lb.cookie-sticky-session": "true"}),
          slice_("sticky", "shop", ready=["127.0.0.5", "127.0.0.6"], ports=[("http", p)]))
    p = c.pods("hidden", ["127.0.0.7"])
    c.add(svc("hidden", "shop", annotations={"lb.host": "hidden.example.com", "lb.ignore": "true"}),
          slice_("hidden", "shop", ready=["127.0.0.7"], ports=[("http", p)]))
    p = c.pods("secure", ["127.0.0.8"], tls=True)
    c.add(svc("secure", "shop", ports=[("https", 443)],
              annotations={"lb.host": "secure.example.com", "lb.sslTerm": "true"}),
          slice_("secure", "shop", ready=["127.0.0.8"], ports=[("https", p)]))
    p = c.pods("thrift", ["127.0.0.9"])
    c.add(svc("thrift", "shop", ports=[("thrift", 7611)], annotations={"lb.tcp": f"thrift:{c.ports['tcp']}"}),
          slice_("thrift", "shop", ready=["127.0.0.9"], ports=[("thrift", p)]))
    cfg = c.sync()
    proc = HAProxyProcess(cfg, c.tmp).start()
    c.proc = proc
    _wait_all_up(c)
    yield c
    proc.stop()
    for b in c.backends.values():
        b.stop()


def _wait_all_up(c, timeout=10.0):
    """Servers start UP (a server with `check` counts as up until a check fails)."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, _ = http_get(c.ports["http"], "/", headers={"Host": "shop.example.com"})
        if status == 200:
            return
        time.sleep(0.1)
    raise AssertionError(c.proc.log())


def get(c, host, path="/", **kw):
    status, headers, body = http_get(c.ports["http"], path, headers={"Host": host, **kw.pop("headers", {})}, **kw)
    return status, headers, body


def who(body):
    return json.loads(body)["backend"]


@pytest.mark.parametrize("host", ["shop.example.com", "SHOP.Example.COM", "shop.example.com:8080",
                                  "Shop.Example.Com:80"])
def test_host_header_routes_with_any_case_and_with_a_port(lb, host):
    status, _, body = get(lb, host)
    assert status == 200 and who(body).startswith("web@")


def test_path_prefix_is_stripped_and_the_query_string_kept(lb):
    status, _, body = get(lb, "unknown.example.org", "/web-80/foo/bar?x=1&y=2")
    assert status == 200
    seen = json.loads(body)
    assert seen["backend"].startswith("web@") and seen["path"] == "/foo/bar?x=1&y=2"


def test_bare_prefix_becomes_root_and_lookalike_prefix_is_not_routed(lb):
    status, _, body = get(lb, "unknown.example.org", "/web-80")
    assert status == 200 and json.loads(body)["path"] == "/"
    assert get(lb, "unknown.example.org", "/web-80foo")[0] == 404


def test_host_routed_request_keeps_its_path(lb):
    status, _, body = get(lb, "shop.example.com", "/web-80/kept?q=1")
    assert json.loads(body)["path"] == "/web-80/kept?q=1"


def test_round_robin_reaches_both_ready_pods_and_never_the_unready_one(lb):
    seen = {who(get(lb, "shop.example.com")[2]) for _ in range(12)}
    assert seen == {"web@127.0.0.2", "web@127.0.0.3"}
    assert lb.backends["127.0.0.4"].requests == []


def test_sticky_cookie_keeps_a_client_on_one_server_for_ten_requests(lb):
    status, headers, body = get(lb, "sticky.example.com")
    first = who(body)
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith("SERVERID=")
    answers = [get(lb, "sticky.example.com", headers={"Cookie": cookie}) for _ in range(10)]
    assert {who(b) for _, _, b in answers} == {first}
    # indirect: the backend never sees our cookie
    assert all(json.loads(b)["cookie"] is None for _, _, b in answers)
    # and without the cookie both servers are used
    assert {who(get(lb, "sticky.example.com")[2]) for _ in range(6)} == {"sticky@127.0.0.5", "sticky@127.0.0.6"}


def test_ignored_service_is_not_routed(lb):
    status, _, body = get(lb, "hidden.example.com")
    assert status == 404
    assert get(lb, "x", "/hidden-80/")[0] == 404
    assert lb.backends["127.0.0.7"].requests == []


def test_unmatched_request_gets_the_404_page(lb):
    status, headers, body = get(lb, "nothing.example.com", "/nope")
    assert status == 404
    assert b"No service is published for this host name or path" in body
    assert headers["content-type"].startswith("text/html")


def test_tls_is_terminated_and_the_backend_spoken_to_over_tls(lb):
    ctx = ssl.create_default_context(cafile=CERT)
    ctx.check_hostname = False
    status, _, body = http_get(lb.ports["https"], "/x", headers={"Host": "secure.example.com"}, tls=ctx)
    assert status == 200 and who(body) == "secure@127.0.0.8"


def test_plain_http_for_a_tls_only_host_redirects_to_https(lb):
    status, headers, _ = get(lb, "secure.example.com", "/a?b=1")
    assert status == 301 and headers["location"] == "https://secure.example.com/a?b=1"


def test_tcp_port_passes_bytes_through_untouched(lb):
    with socket.create_connection(("127.0.0.1", lb.ports["tcp"]), timeout=3) as s:
        s.sendall(b"GET /raw HTTP/1.1\r\nHost: anything\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]
    seen = json.loads(body)
    assert seen["backend"] == "thrift@127.0.0.9" and seen["host"] == "anything"
