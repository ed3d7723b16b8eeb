"""Nodes as servers: eligibility, address choice, Cluster/Local policies, weights, checks, the pool version."""
import pytest

from lbsync import labels, model, nodes, render, runtime_update, slots
from lbsync.haproxy.runtime import RuntimeApi
from lbsync.exceptions import SettingsError
from lbsync.settings import Settings
from lbsync.endpoints import Server
from tests.cluster import endpoints_v1, node, nodeport_svc, slice_, snapshot, svc

NODEPORT = model.Options(backend_mode="nodeport", deny_networks=())
EXCLUDE = {nodes.EXCLUDE_LABEL: ""}


def build(*objects, options=NODEPORT):
    return model.build(snapshot(*objects), options)


def pool(*node_objs, **kw):
    kw.setdefault("address_types", ("InternalIP",))
    return nodes.pool(node_objs, **kw)


def local_slice(name, by_node, not_ready=()):
    es = slice_(name)
    es["endpoints"] = [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": n}
                       for n, ips in by_node.items() for ip in ips]
    es["endpoints"] += [{"addresses": [ip], "conditions": {"ready": False}, "nodeName": n} for n, ip in not_ready]
    return es


@pytest.mark.parametrize("left_out", [
    node("x", "10.0.0.9", labels=EXCLUDE),
    node("x", "10.0.0.9", deleting=True),
    node("x", "10.0.0.9", taints=[{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]),
])
def test_excluded_deleting_and_autoscaler_tainted_nodes_are_never_servers(left_out):
    assert pool(node("a", "10.0.0.1"), left_out).nodes == (("a", "10.0.0.1"),)


def test_other_taints_do_not_exclude_a_node():
    tainted = node("a", "10.0.0.1", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    assert pool(tainted).nodes == (("a", "10.0.0.1"),)


def test_node_selector_restricts_the_pool():
    edge = node("edge", "10.0.0.1", labels={"role": "edge"})
    got = pool(edge, node("w", "10.0.0.2"), selector="role in (edge,gateway)")
    assert got.nodes == (("edge", "10.0.0.1"),)


def test_address_types_are_tried_in_order_and_a_node_without_any_is_reported():
    both, internal_only = node("a", "10.0.0.1", external="203.0.113.1"), node("b", "10.0.0.2")
    got = pool(both, internal_only, node("c"), address_types=("ExternalIP",))
    assert got.nodes == (("a", "203.0.113.1"),)
    assert [(p.code, p.value) for p in got.problems] == [("NodeWithoutAddress", "'b'"), ("NodeWithoutAddress", "'c'")]
    assert all("ExternalIP" in p.reason and p.namespace == p.service == "" for p in got.problems)
    assert pool(both, internal_only, address_types=("ExternalIP", "InternalIP")).nodes == (
        ("a", "203.0.113.1"), ("b", "10.0.0.2"))


def test_a_node_address_in_deny_networks_is_left_out_with_a_reason():
    got = nodes.pool([node("a", "127.0.0.5")], address_types=("InternalIP",), deny=model._networks(("127.0.0.0/8",)))
    assert got.nodes == () and "deny_networks" in got.problems[0].reason


def test_pool_version_follows_the_pool_not_unrelated_node_fields():
    a = pool(node("a", "10.0.0.1"))
    moved = pool(node("a", "10.0.0.9"))
    relabelled = pool(node("a", "10.0.0.1", labels={"team": "x"}))
    assert a.version != moved.version and a.version == relabelled.version


def test_digest_ignores_status_heartbeats_but_sees_addresses_and_labels():
    n = node("a", "10.0.0.1")
    beat = dict(n, status=dict(n["status"], conditions=[{"type": "Ready", "lastHeartbeatTime": "now"}]))
    assert nodes.digest([n]) == nodes.digest([beat])
    assert nodes.digest([n]) != nodes.digest([node("a", "10.0.0.2")])
    assert nodes.digest([n]) != nodes.digest([node("a", "10.0.0.1", labels=EXCLUDE)])


def test_cluster_policy_serves_every_pool_node_checked_on_kube_proxy_healthz():
    b = build(nodeport_svc("web"), slice_("web", ready=["10.244.0.5"]),
              node("b", "10.0.0.2"), node("a", "10.0.0.1")).backends[0]
    assert b.servers == (Server("10.0.0.1", 30080), Server("10.0.0.2", 30080))
    assert (b.check_port, b.check_path) == (10256, "/healthz")


def test_local_policy_serves_nodes_with_ready_endpoints_weighted_by_their_count():
    by_node = {"a": ["10.244.0.1", "10.244.0.2", "10.244.0.3"], "b": ["10.244.1.1"], "gone": ["10.244.9.1"]}
    t = build(nodeport_svc("web", type="LoadBalancer", policy="Local", hcnp=31000),
              local_slice("web", by_node, not_ready=[("c", "10.244.2.1")]),
              node("a", "10.0.0.1"), node("b", "10.0.0.2"), node("c", "10.0.0.3"),
              node("gone", "10.0.0.4", deleting=True))
    b = t.backends[0]
    assert b.servers == (Server("10.0.0.1", 30080, 3), Server("10.0.0.2", 30080, 1))
    assert (b.check_port, b.check_path) == (31000, "/healthz")
    assert [(p.code, p.value, p.level) for p in t.problems] == [("EndpointsOnExcludedNodes", "'gone'", "info")]


def test_local_policy_counts_v1_endpoints_when_there_are_no_slices():
    ep = endpoints_v1("web", ready=["10.244.0.1", "10.244.0.2"])
    for address in ep["subsets"][0]["addresses"]:
        address["nodeName"] = "a"
    b = build(nodeport_svc("web", policy="Local"), ep, node("a", "10.0.0.1")).backends[0]
    assert b.servers == (Server("10.0.0.1", 30080, 2),)
    assert b.check_port is None  # no healthCheckNodePort: the nodePort itself is checked


def test_weight_is_capped_at_haproxys_maximum():
    many = {"a": [f"10.244.{i // 250}.{i % 250 + 1}" for i in range(300)]}
    b = build(nodeport_svc("web", policy="Local"), local_slice("web", many), node("a", "10.0.0.1")).backends[0]
    assert b.servers == (Server("10.0.0.1", 30080, 256),)


def test_clusterip_service_in_nodeport_mode_is_left_out_with_a_reason():
    t = build(svc("web"), slice_("web", ready=["10.244.0.5"]), node("a", "10.0.0.1"))
    assert t.backends == ()
    p = t.problems[0]
    assert (p.code, p.value, p.annotation) == ("NotANodePortService", "'ClusterIP'", nodes.MODE_ANNOTATION)


def test_port_without_node_port_is_left_out():
    s = nodeport_svc("web")
    del s["spec"]["ports"][0]["nodePort"]
    t = build(s, node("a", "10.0.0.1"))
    assert t.backends == () and t.problems[0].code == "PortWithoutNodePort"


def test_annotation_overrides_the_setting_and_an_invalid_value_falls_back_to_it():
    pods = model.Options(deny_networks=())
    forced = nodeport_svc("web", annotations={"lb.backend-mode": "nodeport"})
    typo = nodeport_svc("api", annotations={"lb.backend-mode": "nodeports"})
    t = build(forced, typo, slice_("web", ready=["10.244.0.5"]), slice_("api", ready=["10.244.0.6"]),
              node("a", "10.0.0.1"), options=pods)
    servers = {b.service: b.servers for b in t.backends}
    assert servers == {"web": (Server("10.0.0.1", 30080),), "api": (Server("10.244.0.6", 8080),)}
    assert [(p.code, p.value) for p in t.problems if p.annotation.endswith("lb.backend-mode")] == [
        ("InvalidAnnotation", "'nodeports'"), ("DefaultBackendMode", "")]
    assert all("nodeports" not in p.reason for p in t.problems)  # untrusted text stays in `value`


def test_pod_mode_never_reads_nodes():
    t = build(nodeport_svc("web"), slice_("web", ready=["10.244.0.5"]), node("a"), options=model.Options())
    assert t.backends[0].servers == (Server("10.244.0.5", 8080),) and t.problems == ()


def test_wants_nodes_only_when_some_service_is_in_nodeport_mode():
    annotated = nodeport_svc("web", annotations={"lb.backend-mode": "nodeport"})
    assert not nodes.wants_nodes([svc("a")], "pod")
    assert nodes.wants_nodes([svc("a"), annotated], "pod")
    assert nodes.wants_nodes([], "nodeport")
    pod = nodeport_svc("api", annotations={"lb.backend-mode": "pod", "lb.algorithm": "leastconn"})
    bad = nodeport_svc("bad", annotations={"lb.backend-mode": "sideways"})  # reported by the model, not here
    odd = [{"metadata": None}, {"metadata": {"annotations": ["x"]}}, {"metadata": "x"}, "not a Service"]
    assert not nodes.wants_nodes([svc("a"), pod, bad, *odd], "pod")
    assert nodes.wants_nodes([*odd, pod, annotated], "pod")


@pytest.mark.parametrize("text, has, lacks", [
    ("role=edge", {"role": "edge"}, {"role": "web"}),
    ("role!=edge", {}, {"role": "edge"}),
    ("role", {"role": ""}, {}),
    ("!role", {}, {"role": "x"}),
    ("role in (a, b),zone notin (z1)", {"role": "b", "zone": "z2"}, {"role": "b", "zone": "z1"}),
    ("node-role.kubernetes.io/edge", {"node-role.kubernetes.io/edge": ""}, {}),
])
def test_label_selectors(text, has, lacks):
    sel = labels.parse(text)
    assert labels.matches(sel, has) and not labels.matches(sel, lacks)


@pytest.mark.parametrize("bad", ["role=(a)", "role in ()", "a b", "role in (a", "=x", "role==a b"])
def test_bad_label_selectors_raise(bad):
    with pytest.raises(ValueError):
        labels.parse(bad)


def test_a_weight_change_keeps_the_slot_and_is_one_change():
    before = slots.assign([Server("10.0.0.1", 30080, 3), Server("10.0.0.2", 30080, 1)])
    after = slots.assign([Server("10.0.0.2", 30080, 2), Server("10.0.0.1", 30080, 3)], before)
    assert after[:2] == (Server("10.0.0.1", 30080, 3), Server("10.0.0.2", 30080, 2))
    assert slots.changes({"be": before}, {"be": after}) == (
        slots.Change("be", 2, Server("10.0.0.2", 30080, 1), Server("10.0.0.2", 30080, 2)),)


def test_weights_survive_render_and_parse():
    t = build(nodeport_svc("web", policy="Local"), local_slice("web", {"a": ["10.244.0.1", "10.244.0.2"]}),
              node("a", "10.0.0.1"), node("b", "10.0.0.2"))
    text = render.Renderer().render(t)
    assert "server s1 10.0.0.1:30080 weight 2\n" in text
    assert slots.parse(text)[t.backends[0].name][0] == Server("10.0.0.1", 30080, 2)


@pytest.mark.parametrize("bad", [dict(backend_mode="nodeports"), dict(node_address_types=("Hostname",)),
                                 dict(node_address_types=()), dict(node_selector="a in ()"),
                                 dict(node_health_port=0)])
def test_bad_node_settings_are_refused(bad):
    with pytest.raises(SettingsError):
        Settings(**bad)


class RecordingRuntime(RuntimeApi):
    """Answers as HAProxy 2.6 does, without a socket (`show servers state` from what it was
    told); keeps every command that changes something."""

    def __init__(self):
        super().__init__("/nonexistent")
        self.sent, self.held = [], {}

    def raw(self, cmd):
        words = cmd.split()
        if cmd.startswith("show servers state"):
            rows = "".join(f"1 {words[3]} {i} {name} {addr} 2 0 {port}\n"
                           for i, (name, (addr, port)) in enumerate(sorted(self.held.items()), 1))
            return "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_port\n" + rows
        self.sent.append(cmd)
        if words[3] == "addr":
            self.held[words[2].split("/")[1]] = (words[4], words[6])
            return "IP changed from '127.0.0.1' to '%s' by 'stats socket command'\n" % words[4]
        return ""


def test_runtime_commands_for_a_new_node_a_weight_change_and_a_node_that_left():
    before = {"be": (Server("10.0.0.1", 30080, 3), Server("10.0.0.2", 30080, 1), None, None)}
    after = {"be": (Server("10.0.0.1", 30080, 2), None, Server("10.0.0.3", 30080, 1), None)}
    api = RecordingRuntime()
    runtime_update.apply(api, slots.changes(before, after))
    assert api.sent == [
        "set server be/s1 weight 2",
        "set server be/s3 addr 10.0.0.3 port 30080", "set server be/s3 weight 1", "set server be/s3 state ready",
        "set server be/s2 state drain", "set server be/s2 state maint",
        "set server be/s2 addr 127.0.0.1 port 1", "set server be/s2 weight 1"]


def test_pod_mode_runtime_commands_carry_no_weight():
    api = RecordingRuntime()
    runtime_update.apply(api, slots.changes({"be": (Server("10.0.0.1", 80), None)},
                                            {"be": (None, Server("10.0.0.2", 80))}))
    assert not any("weight" in cmd for cmd in api.sent) and len(api.sent) == 5
