"""Property: any set of Services, however strange, renders a config the real HAProxy accepts;
hostile annotation text never reaches it unless it passed validation; valid Services stay routed."""
import os
import shutil
import string
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lbsync import annotations as ann
from lbsync import events, model, render
from tests.cluster import node, slice_, snapshot, svc

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy binary not installed")]
CERT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "golden", "_tls", "lb.pem")

NASTY = ["\n", "\r\n", " ", "#", "'", '"', "{{", "}}", "{%", "\\", "\x00", "é", ";", "$", "%[", "\t",
         "use_backend x if TRUE", "\nglobal\n", "}"]
valid_host = st.from_regex(r"\A(\*\.)?[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}\Z")
valid_prefix = st.from_regex(r"\A(/[A-Za-z0-9._~-]{1,8}){1,3}\Z")
hostile = st.one_of(
    st.text(alphabet=string.printable + "é€\x00\x7f", max_size=40),
    st.builds(lambda a, n, b: a + n + b, st.text(max_size=10), st.sampled_from(NASTY), st.text(max_size=10)),
    st.just("x" * 5000))
value = {
    "lb.host": st.one_of(valid_host, st.lists(valid_host, min_size=1, max_size=3).map(",".join), hostile),
    "lb.path-prefix": st.one_of(valid_prefix, st.just("none"), hostile),
    "lb.sslTerm": st.one_of(st.sampled_from(["true", "false"]), hostile),
    "lb.cookie-sticky-session": st.one_of(st.sampled_from(["true", "false"]), hostile),
    "lb.algorithm": st.one_of(st.sampled_from(ann.ALGORITHMS), hostile),
    "lb.check-interval": st.one_of(st.sampled_from(["500ms", "2s", "1m"]), hostile),
    "lb.check-path": st.one_of(st.sampled_from(["/", "/healthz", "/h?x=1"]), hostile),
    "lb.tcp": st.one_of(st.sampled_from(["http", "80:19001", "http:19002"]), hostile),
    "lb.ignore": st.one_of(st.sampled_from(["true", "false"]), hostile),
    "lb.backend-mode": st.one_of(st.sampled_from(["pod", "nodeport"]), hostile),
}
annotations = st.dictionaries(st.sampled_from(sorted(value)), st.none(), max_size=5).flatmap(
    lambda keys: st.fixed_dictionaries({k: value[k] for k in keys}))
ip = st.tuples(st.integers(1, 254), st.integers(0, 255), st.integers(1, 254)).map(lambda t: "10.%d.%d.%d" % t)
NODES = ["n0", "n1", "n2", "n3"]


def nodeport(draw, obj):
    """Make some Services NodePort/LoadBalancer, with either traffic policy."""
    spec = obj["spec"]
    spec["type"] = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
    if spec["type"] != "ClusterIP":
        for i, port in enumerate(spec["ports"]):
            port["nodePort"] = draw(st.sampled_from([30000 + i, 0, 70000]))
        spec["externalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local", "Bogus"]))
        spec["healthCheckNodePort"] = draw(st.sampled_from([None, 32000, "x"]))
    return obj


@st.composite
def nodes(draw):
    found = []
    for name in draw(st.lists(st.sampled_from(NODES), max_size=4, unique=True)):
        labels = draw(st.sampled_from([{}, {"node.kubernetes.io/exclude-from-external-load-balancers": ""}]))
        found.append(node(name, draw(st.one_of(ip, hostile)), external=draw(st.one_of(st.none(), hostile)),
                          labels=labels))
    return found


@st.composite
def clusters(draw):
    objs, names = [], set()
    for i in range(draw(st.integers(1, 6))):
        name = draw(st.sampled_from(["web", "api", "shop", "am", "x"])) + str(i)
        ns = draw(st.sampled_from(["a", "b", "default", "kube-system"]))
        ports = [("http", draw(st.sampled_from([80, 8080, 9443])))]
        if draw(st.booleans()):
            ports.append(("admin", 9000, 9000, draw(st.sampled_from(["TCP", "UDP"]))))
        objs.append(nodeport(draw, svc(name, ns, ports=ports, annotations=draw(annotations),
                                       created=f"2026-01-0{1 + i % 9}T00:00:00Z")))
        ready = draw(st.lists(ip, max_size=4, unique=True))
        es = slice_(name, ns, ready=ready, not_ready=draw(st.lists(ip, max_size=2)),
                    ports=[("http", 8080), ("admin", 9000)])
        for endpoint in es["endpoints"]:
            endpoint["nodeName"] = draw(st.sampled_from(NODES + ["elsewhere"]))
        objs.append(es)
        names.add((ns, name))
    return objs + draw(nodes())


def haproxy_check(text):
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(text)
    try:
        out = subprocess.run(["haproxy", "-c", "-f", f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    return out.returncode, out.stdout + out.stderr


RENDERER = render.Renderer(render.Frame(http_bind="127.0.0.1:18080", https_bind="127.0.0.1:18443",
                                        stats_bind="127.0.0.1:18936", tcp_bind_address="127.0.0.1",
                                        tls_cert=CERT))


BASELINE = RENDERER.render(model.Topology(()))


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(clusters())
def test_any_cluster_renders_a_config_haproxy_accepts(objs):
    topology = model.build(snapshot(*objs), model.Options(tls=True, reserved_ports=(18080, 18443, 18936),
                                                          deny_networks=("10.0.0.0/16",)))
    text = RENDERER.render(topology)
    code, output = haproxy_check(text)
    assert code == 0, output
    assert "[WARNING]" not in output, output
    # hostile text never reaches the config unless it passed validation
    accepted = {str(v) for b in topology.backends for v in (*b.hosts, b.path_prefix, b.check_path) if v}
    for obj in objs:
        for key, raw in (obj["metadata"].get("annotations") or {}).items():
            if len(raw) >= 6 and raw not in accepted and any(n in raw for n in NASTY if n.strip()) \
                    and raw not in BASELINE:  # "\nglobal\n" is in every config, from the template
                assert raw not in text, (key, raw)
                # nor a Problem's reason and code, nor an Event's note made of them
                assert not any(raw in p.reason or raw in p.code or raw in events.note_text(p)
                               for p in topology.problems), (key, raw)
    for obj in objs:  # nor do a Node's hostile addresses
        for entry in obj.get("status", {}).get("addresses", ()) if obj["kind"] == "Node" else ():
            raw = entry["address"]
            if len(raw) >= 6 and any(n in raw for n in NASTY if n.strip()):
                assert raw not in text, raw
    # every Service that was valid and published is routed (or reported why not)
    reported = {(p.namespace, p.service) for p in topology.problems}
    routed = {(b.namespace, b.service) for b in topology.backends}
    for obj in objs:
        if obj["kind"] == "Service":
            meta = obj["metadata"]
            key = (meta["namespace"], meta["name"])
            assert key in routed or key in reported, key
