"""`lbsync routes` as a pure function of a Topology: rows, order, counts, live states, JSON, safety."""
import dataclasses
import json

import pytest

from lbsync import model, routes
from lbsync.haproxy.runtime import parse_servers_state
from lbsync.topology import Options, Topology
from tests.cluster import endpoints_v1, slice_, snapshot, svc

TLS = Options(tls=True, path_prefixes=True)


def build(*objects, options=TLS):
    return model.build(snapshot(*objects), options)


def test_rows_follow_haproxy_match_order_exact_hosts_wildcards_then_longest_prefix():
    t = build(svc("a", "ns", annotations={"lb.host": "*.example.com,b.example.com"}),
              svc("b", "ns", annotations={"lb.host": "*.deep.example.com", "lb.path-prefix": "/b/long"}),
              svc("c", "ns", annotations={"lb.tcp": "http:9000"}))
    got = [(r.frontend, r.host, r.path) for r in routes.rows(t)]
    assert got == [("http", "b.example.com", "/"),
                   ("http", "*.deep.example.com", "/"), ("http", "*.example.com", "/"),
                   ("http", None, "/b/long"), ("http", None, "/a-80"),
                   ("tcp:9000", None, None)]


def test_servers_count_ready_over_all_endpoints_from_slices_and_v1_endpoints():
    t = build(svc("s", "ns", annotations={"lb.host": "s.example.com"}),
              slice_("s", "ns", ready=["10.0.0.1", "10.0.0.2"], not_ready=["10.0.0.3"]),
              svc("e", "ns", annotations={"lb.host": "e.example.com"}),
              endpoints_v1("e", "ns", ready=["10.0.1.1"], not_ready=["10.0.1.2", "10.0.1.3"]),
              svc("none", "ns", annotations={"lb.host": "none.example.com"}),
              slice_("none", "ns", not_ready=["10.0.2.1"]), options=Options(path_prefixes=False))
    servers = {r.host: routes.document(Topology((r.backend,)))["routes"][0]["servers"]
               for r in routes.rows(t)}
    assert servers == {"s.example.com": {"ready": 2, "total": 3}, "e.example.com": {"ready": 1, "total": 3},
                       "none.example.com": {"ready": 0, "total": 1}}
    assert " 0/1 " in routes.table(t)


def test_a_pod_listed_twice_ready_and_not_ready_counts_once():
    t = build(svc("s", "ns", annotations={"lb.host": "s.example.com"}),
              slice_("s", "ns", ready=["10.0.0.1"], suffix="aaaaa"),
              slice_("s", "ns", not_ready=["10.0.0.1", "10.0.0.2"], suffix="bbbbb"))
    assert routes.document(t)["routes"][0]["servers"] == {"ready": 1, "total": 2}


def test_table_lists_every_problem_warnings_first_with_its_reason():
    t = build(svc("tls", "ns", annotations={"lb.host": "t.example.com", "lb.sslTerm": "true"}),
              slice_("tls", "ns", ready=["10.0.0.1"]), svc("dns", "kube-system"), options=Options(tls=False))
    text = routes.table(t)
    assert text.startswith("No routes: nothing is served.\n")
    left = text.split("Left out or not as asked (2):\n")[1].splitlines()
    assert left[0].split() == ["SERVICE", "LEVEL", "CODE", "ANNOTATION", "REASON"]
    assert left[1].split()[:3] == ["ns/tls", "warning", "TLSWithoutCertificate"]
    assert "no TLS certificate is configured" in left[1]
    assert left[2].split()[:3] == ["kube-system/dns", "info", "ExcludedBySettings"]
    assert "excluded by settings" in left[2]
    assert [p["code"] for p in routes.document(t)["left_out"]] == ["TLSWithoutCertificate", "ExcludedBySettings"]


def test_nothing_served_and_nothing_left_out_say_so():
    assert routes.table(Topology(())) == "No routes: nothing is served.\n\nNothing left out.\n"


def test_control_characters_from_the_cluster_never_reach_the_terminal():
    found = build(svc("web", "ns", annotations={"lb.algorithm": "bogus"})).problems[0]
    hostile = dataclasses.replace(found, annotation="serviceloadbalancer/\x1b[2Jx", reason="bad\x07 \x1b]0;owned\x07")
    text = routes.table(Topology((), (hostile,)))
    assert "\x1b" not in text and "\x07" not in text
    assert "serviceloadbalancer/?[2Jx" in text
    # JSON escapes them instead: the value stays exact for programs
    assert json.loads(routes.to_json(Topology((), (hostile,))))["left_out"][0]["annotation"] == hostile.annotation


STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 web 1 s1 10.0.0.1 2 0 1 1 10 15 3 4 6 0 0 0 - 8080 - 0 0 - - 0
3 web 2 s2 10.0.0.2 0 0 1 1 10 7 2 0 6 0 0 0 - 8080 - 0 0 - - 0
3 web 3 s3 10.0.0.3 0 1 1 1 10 1 0 0 6 0 0 0 - 8080 - 0 0 - - 0
3 web 4 s4 10.0.0.4 2 8 1 1 10 15 3 4 6 0 0 0 - 8080 - 0 0 - - 0
3 web 5 s5 127.0.0.1 0 1 1 1 10 1 0 0 6 0 0 0 - 1 - 0 0 - - 0
4 idle 1 s1 127.0.0.1 0 1 1 1 10 1 0 0 6 0 0 0 - 1 - 0 0 - - 0
"""


def test_live_states_count_up_down_maint_drain_and_skip_free_slots():
    live = routes.live_states(parse_servers_state(STATE))
    assert live["web"] == routes.Live(up=1, down=1, maint=1, drain=1)
    assert live["idle"] == routes.Live()
    assert live["web"].text() == "1 UP 1 DOWN 1 MAINT 1 DRAIN" and live["idle"].text() == "no servers"


def test_live_column_and_json_field_appear_only_when_asked():
    t = build(svc("web", "ns", annotations={"lb.host": "w.example.com", "lb.path-prefix": "none"}),
              slice_("web", "ns", ready=["10.0.0.1"]))
    name = t.backends[0].name
    assert "LIVE" not in routes.table(t) and "live" not in routes.document(t)["routes"][0]
    live = {name: routes.Live(up=2, down=1)}
    assert routes.table(t, live).splitlines()[1].endswith("2 UP 1 DOWN")
    assert routes.document(t, live)["routes"][0]["live"] == {"up": 2, "down": 1, "maint": 0, "drain": 0}
    assert routes.table(t, {}).splitlines()[1].endswith("not in HAProxy")
    assert routes.document(t, {})["routes"][0]["live"] is None


@pytest.mark.parametrize("key", ["version", "routes", "left_out"])
def test_json_has_its_documented_top_level_keys(key):
    assert key in json.loads(routes.to_json(Topology(())))
