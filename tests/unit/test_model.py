"""The model: which Services are published, how, and what is left out with which reason."""
import random

import pytest

from lbsync import model
from lbsync.endpoints import Server
from tests.cluster import endpoints_v1, slice_, snapshot, svc

TLS = model.Options(tls=True)


def build(*objects, options=model.Options()):
    return model.build(snapshot(*objects), options)


def one(topology, name=None):
    backends = [b for b in topology.backends if name is None or b.name == name]
    assert len(backends) == 1, [b.name for b in topology.backends]
    return backends[0]


def reasons(topology):
    return [p.reason for p in topology.problems]


def test_only_ready_endpoints_are_served():
    t = build(svc("web"), slice_("web", ready=["10.0.0.1", "10.0.0.2"], not_ready=["10.0.0.3"]))
    assert one(t).servers == (Server("10.0.0.1", 8080), Server("10.0.0.2", 8080))


def test_not_ready_addresses_of_v1_endpoints_are_not_served():
    t = build(svc("web"), endpoints_v1("web", ready=["10.0.0.1"], not_ready=["10.0.0.9"]))
    assert one(t).servers == (Server("10.0.0.1", 8080),)


def test_endpoint_slices_win_over_v1_endpoints_for_the_same_service():
    t = build(svc("web"), slice_("web", ready=["10.0.0.1"]), endpoints_v1("web", ready=["10.9.9.9"]))
    assert one(t).servers == (Server("10.0.0.1", 8080),)


def test_endpoints_of_several_slices_are_merged_and_deduplicated():
    t = build(svc("web"), slice_("web", ready=["10.0.0.1", "10.0.0.2"], suffix="a"),
              slice_("web", ready=["10.0.0.2", "10.0.0.3"], suffix="b"))
    assert [s.address for s in one(t).servers] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_absent_ready_condition_counts_as_ready():
    es = slice_("web", ready=["10.0.0.1"])
    es["endpoints"][0]["conditions"] = {}
    assert len(one(build(svc("web"), es)).servers) == 1


def test_named_target_port_resolves_through_the_endpoint_port_name():
    s = svc("api", ports=[("http", 80, "web"), ("admin", 9000, "adm")])
    es = slice_("api", ready=["10.0.0.1"], ports=[("http", 8080), ("admin", 9090)])
    t = build(s, es)
    ports = {b.port: b.servers[0].port for b in t.backends}
    assert ports == {80: 8080, 9000: 9090}


def test_udp_ports_are_left_out_visibly():
    t = build(svc("dns", ports=[("dns", 53, 53, "UDP"), ("http", 80)]),
              slice_("dns", ready=["10.0.0.1"], ports=[("dns", 53, "UDP"), ("http", 80)]))
    assert one(t).port == 80
    assert any("53/UDP" in r for r in reasons(t))


def test_external_name_service_is_left_out_visibly():
    t = build(svc("ext", type="ExternalName"))
    assert t.backends == ()
    assert any("ExternalName" in r for r in reasons(t))


def test_port_without_endpoints_keeps_its_backend_so_clients_get_503_not_404():
    t = build(svc("web"))
    assert one(t).servers == ()
    assert any("no ready endpoints" in r for r in reasons(t))


def test_loopback_and_metadata_endpoint_addresses_are_never_served_and_say_so():
    t = build(svc("web"), endpoints_v1("web", ready=["127.0.0.1", "169.254.169.254", "10.0.0.1"]))
    assert one(t).servers == (Server("10.0.0.1", 8080),)
    assert any("127.0.0.1, 169.254.169.254 are in deny_networks" in r for r in reasons(t))


def test_invalid_endpoint_addresses_are_dropped():
    t = build(svc("web"), endpoints_v1("web", ready=["10.0.0.1", "not-an-ip", "fe80::1%eth0", "10.0.0.1\n"]))
    assert one(t).servers == (Server("10.0.0.1", 8080),)


def test_cluster_api_server_and_kube_system_are_never_published_by_default():
    t = build(svc("kubernetes", ports=[("https", 443)]), svc("dns", "kube-system"), svc("web"))
    assert [b.service for b in t.backends] == ["web"]


def test_opt_in_mode_publishes_only_annotated_services():
    opts = model.Options(publish="annotated")
    t = build(svc("a", annotations={"lb.enabled": "true"}), svc("b"), options=opts)
    assert [b.service for b in t.backends] == ["a"]


@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_ignore_annotation_leaves_the_service_out(value):
    t = build(svc("all-ports", annotations={"lb.ignore": value}), svc("web"))
    assert [b.service for b in t.backends] == ["web"]


@pytest.mark.parametrize("value", ["yes", "1", "true\n#", ""])
def test_unreadable_ignore_annotation_fails_closed(value):
    t = build(svc("x", annotations={"lb.ignore": value}))
    assert t.backends == ()
    assert any("to be safe" in r for r in reasons(t))


def test_default_backend_name_and_path_prefix():
    b = one(build(svc("apps-preprod", "shop")))
    assert (b.name, b.path_prefix, b.hosts) == ("shop_apps-preprod_80", "/apps-preprod-80", ())


def test_host_annotation_names_the_backend_after_the_host():
    b = one(build(svc("web", annotations={"lb.host": "Shop.Example.com, www.shop.example.com"})))
    assert b.name == "shop.example.com"
    assert b.hosts == ("shop.example.com", "www.shop.example.com")


def test_per_port_host_by_number_and_by_name():
    s = svc("wso2am", ports=[("servlet-http", 9763), ("pt-http", 8280)],
            annotations={"lb.host.9763": "mgt.am.example.com", "lb.host.pt-http": "gw.am.example.com"})
    t = build(s)
    assert {b.port: b.hosts for b in t.backends} == {9763: ("mgt.am.example.com",), 8280: ("gw.am.example.com",)}


def test_per_port_annotation_for_a_missing_port_is_reported():
    t = build(svc("web", annotations={"lb.host.8443": "a.example.com"}))
    assert one(t).hosts == ()
    assert any("names no port" in r for r in reasons(t))


def test_path_prefix_can_be_changed_and_disabled():
    t = build(svc("a", annotations={"lb.path-prefix": "/shop/"}),
              svc("b", annotations={"lb.path-prefix": "none", "lb.host": "b.example.com"}))
    assert {b.service: b.path_prefix for b in t.backends} == {"a": "/shop", "b": None}


def test_a_route_with_neither_host_nor_prefix_is_left_out():
    t = build(svc("a", annotations={"lb.path-prefix": "none"}))
    assert t.backends == ()
    assert any("no host and no path prefix" in r for r in reasons(t))


def test_ssl_termination_needs_a_certificate():
    s = svc("secure", annotations={"lb.sslTerm": "true", "lb.host": "s.example.com"})
    assert build(s).backends == ()
    assert one(build(s, options=TLS)).ssl is True


def test_same_host_may_be_served_on_http_and_https_by_different_ports():
    s = svc("am", ports=[("https", 9443), ("http", 9763)],
            annotations={"lb.host": "am.example.com", "lb.sslTerm.9443": "true"})
    t = build(s, options=TLS)
    assert {b.port: (b.frontend, b.hosts) for b in t.backends} == {
        9443: ("https", ("am.example.com",)), 9763: ("http", ("am.example.com",))}
    assert len({b.name for b in t.backends}) == 2


def test_sticky_sessions_algorithm_and_checks():
    b = one(build(svc("web", annotations={"lb.cookie-sticky-session": "true", "lb.algorithm": "LeastConn",
                                          "lb.check-interval": "5s", "lb.check-path": "/healthz"})))
    assert (b.sticky, b.algorithm, b.check_interval_ms, b.check_path) == (True, "leastconn", 5000, "/healthz")


def test_unknown_algorithm_is_reported_and_the_default_used():
    t = build(svc("web", annotations={"lb.algorithm": "fastest"}))
    assert one(t).algorithm == "roundrobin"
    bad = next(p for p in t.problems if p.code == "InvalidAnnotation")
    assert "'fastest'" in bad.value and "fastest" not in bad.reason  # the value: log only


@pytest.mark.parametrize("value", ["5", "5 s", "0s", "2h", "-1s"])
def test_check_interval_needs_a_unit_and_a_sane_range(value):
    t = build(svc("web", annotations={"lb.check-interval": value}))
    assert one(t).check_interval_ms == 2000
    assert reasons(t)


def test_tcp_ports_get_their_own_listen_port():
    s = svc("am", ports=[("thrift", 7611), ("thrift-ssl", 7711), ("http", 9763)],
            annotations={"lb.tcp": "thrift,7711:17711"})
    t = build(s)
    assert {b.port: (b.mode, b.listen_port) for b in t.backends} == {
        7611: ("tcp", 7611), 7711: ("tcp", 17711), 9763: ("http", None)}


def test_tcp_port_clashing_with_our_own_binds_is_refused():
    t = build(svc("db", ports=[("pg", 80)], annotations={"lb.tcp": "pg"}),
              options=model.Options(reserved_ports=(80, 443)))
    assert t.backends == ()
    assert any("already taken by lbsync's own frontends" in r for r in reasons(t))


def test_older_service_keeps_a_contested_host_and_the_warning_names_both():
    old = svc("old", "team-a", annotations={"lb.host": "shop.example.com"}, created="2026-01-01T00:00:00Z")
    new = svc("new", "team-b", annotations={"lb.host": "shop.example.com", "lb.path-prefix": "none"},
              created="2026-06-01T00:00:00Z")
    t = build(new, old)
    assert [b.namespace for b in t.backends] == ["team-a"]
    msg = next(r for r in reasons(t) if "already claimed" in r)
    assert "team-a/old" in msg and "team-b/new" in msg


def test_same_service_name_in_two_namespaces_cannot_take_each_others_prefix():
    a = svc("web", "a", created="2026-01-01T00:00:00Z")
    b = svc("web", "b", created="2026-02-01T00:00:00Z", annotations={"lb.host": "b.example.com"})
    t = build(b, a)
    by_ns = {x.namespace: x for x in t.backends}
    assert by_ns["a"].path_prefix == "/web-80"
    assert by_ns["b"].path_prefix is None and by_ns["b"].hosts == ("b.example.com",)
    assert by_ns["a"].name != by_ns["b"].name


def test_same_cluster_in_any_order_gives_the_same_topology():
    objs = [svc(f"s{i}", f"ns{i % 3}", annotations={"lb.host": f"h{i % 4}.example.com"},
                created=f"2026-01-0{1 + i % 5}T00:00:00Z") for i in range(12)]
    objs += [slice_(f"s{i}", f"ns{i % 3}", ready=[f"10.0.{i}.{j}" for j in (3, 1, 2)]) for i in range(12)]
    first = build(*objs)
    for seed in range(5):
        random.Random(seed).shuffle(objs)
        assert build(*objs) == first


def test_invalid_service_names_are_left_out():
    t = build(svc("Bad_Name"), svc("ok"))
    assert [b.service for b in t.backends] == ["ok"]


def test_unknown_annotation_is_reported_as_a_probable_typo():
    t = build(svc("web", annotations={"lb.hosts": "a.example.com"}))
    assert any("typo" in r for r in reasons(t))


@pytest.mark.parametrize("objects, options, code, level", [
    ((svc("web", annotations={"lb.sslTerm": "true"}), slice_("web", ready=["10.0.0.1"])), model.Options(),
     "TLSWithoutCertificate", "warning"),
    ((svc("web"),), model.Options(), "NoReadyEndpoints", "info"),
    ((svc("web"), slice_("web", ready=["127.0.0.1"])), model.Options(), "EndpointsInDeniedNetwork", "warning"),
    ((svc("web", annotations={"lb.hots": "a.example.com"}),), model.Options(), "UnknownAnnotation", "warning"),
    ((svc("web", annotations={"lb.host.nope": "a.example.com"}),), model.Options(), "AnnotationNamesNoPort",
     "warning"),
    ((svc("web", annotations={"lb.ignore": "true"}),), model.Options(), "IgnoredByAnnotation", "info"),
    ((svc("web", annotations={"lb.enabled": "false"}),), model.Options(), "DisabledByAnnotation", "info"),
    ((svc("web", annotations={"lb.ignore": "maybe"}),), model.Options(), "InvalidAnnotation", "warning"),
    ((svc("web"),), model.Options(publish="annotated"), "NotOptedIn", "info"),
    ((svc("web", "kube-system"),), model.Options(), "ExcludedBySettings", "info"),
    ((svc("web", ports=[("dns", 53, 53, "UDP")]),), model.Options(), "ProtocolNotSupported", "info"),
])
def test_every_problem_carries_a_code(objects, options, code, level):
    found = [p for p in build(*objects, options=options).problems if p.code == code]
    assert found and found[0].level == level and found[0].service == "web"


def test_a_lost_host_conflict_is_coded_and_names_the_winner():
    old = svc("old", annotations={"lb.host": "a.example.com"}, created="2026-01-01T00:00:00Z")
    new = svc("new", annotations={"lb.host": "a.example.com"}, created="2026-01-02T00:00:00Z")
    t = build(old, new, options=model.Options(path_prefixes=False))
    lost = [p for p in t.problems if p.code == "HostConflictLost"]
    assert [(p.service, "default/old:80" in p.reason) for p in lost] == [("new", True)]
    assert any(p.code == "NoRouteLeft" and p.service == "new" for p in t.problems)


def test_a_problem_without_a_code_is_a_bug_caught_at_once():
    with pytest.raises(ValueError):
        model.Problem("default", "web", "", "something")
