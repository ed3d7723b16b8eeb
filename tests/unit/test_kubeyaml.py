"""kubeyaml reads kubectl's YAML exactly as yaml.safe_load does (less the dropped keys), and
hands every text it does not fully understand back (Unsupported), never a half-right result."""
import json
import os
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from lbsync import kubeyaml, yamlstream
from lbsync.source import FileSource

HERE = os.path.dirname(os.path.abspath(__file__))
KUBECTL_DUMP = os.path.join(os.path.dirname(HERE), "golden", "kubectl-output", "cluster.yaml")
DROP = frozenset(("managedFields", "kubectl.kubernetes.io/last-applied-configuration"))


def without(value, drop=DROP):
    if isinstance(value, dict):
        return {k: without(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [without(v, drop) for v in value]
    return value


def expected(text, drop=DROP):
    return [without(d, drop) for d in yaml.safe_load_all(text) if d is not None]


def same_or_refused(text, drop=DROP):
    """kubeyaml's result is yaml.safe_load's, or kubeyaml refuses the text (True: it read it)."""
    try:
        got = kubeyaml.load(text, drop)
    except kubeyaml.Unsupported:
        return False
    assert repr(got) == repr(expected(text, drop))  # repr: types count (1, 1.0, True), nan != nan
    return True


def test_the_real_kubectl_dump_is_read_here_as_safe_load_reads_it():
    with open(KUBECTL_DUMP) as f:
        text = f.read()
    assert same_or_refused(text)
    assert same_or_refused(text, frozenset())


# -- a kubectl-style emitter: indentless lists, 2 spaces, double quotes, |/|- literals ----------
PLAIN_SAFE = re.compile(r"[A-Za-z0-9][\w./-]*")


def kubectl_scalar(value, indent):
    if isinstance(value, str):
        if "\n" in value and not re.search(r"^[ \n]| \n| $|\n\n$", value) and not kubeyaml._odd(value):
            body, pad = (value[:-1] if value.endswith("\n") else value), " " * (indent + 2)
            return ("|" if value.endswith("\n") else "|-") + "".join("\n" + pad + ln if ln else "\n"
                                                                    for ln in body.split("\n"))
        if PLAIN_SAFE.fullmatch(value) and yaml.safe_load(value) == value:
            return value
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    return json.dumps(value)


def kubectl_yaml(value, indent=0, lines=None):
    lines = [] if lines is None else lines
    pad = " " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            head = pad + kubectl_scalar(k, indent) + ":"
            emit_child(head, v, indent, indent + 2, lines)
    else:
        for v in value:
            if isinstance(v, dict) and v:
                sub = kubectl_yaml(v, indent + 2)
                lines.append(pad + "- " + sub[0][indent + 2:])
                lines.extend(sub[1:])
            else:
                emit_child(pad + "-", v, indent, indent + 2, lines)
    return lines


def emit_child(head, v, indent, deeper, lines):
    if isinstance(v, dict) and v:
        lines.append(head)
        kubectl_yaml(v, deeper, lines)
    elif isinstance(v, list) and v:
        lines.append(head)
        kubectl_yaml(v, indent if head.rstrip().endswith(":") else deeper, lines)
    elif isinstance(v, (dict, list)):
        lines.append(head + (" {}" if isinstance(v, dict) else " []"))
    else:
        lines.append(head + " " + kubectl_scalar(v, indent))


WORDS = st.sampled_from(["web", "80", "yes", "No", "on", "OFF", "~", "null", "true", "1:30", "0x1f", "017",
                         "1e3", "1.5", ".inf", "-.NaN", "2026-01-01", "2026-01-01T00:00:00Z", "10.96.0.1",
                         "a: b", "a #b", "#x", "- x", "'q'", '"d"', "{}", "[]", "|", ">", "*x", "&x", "!x",
                         "<<", "=", "é", "ünï", "\u2028", "\x85", "\t", "\\", "", " ", "x ", " x", "%", "@",
                         "managedFields", "f:spec", "a:b", "x\ny", "x\ny\n", "\nx", "x\n\ny\n"])
TEXTS = st.lists(st.one_of(WORDS, st.text(alphabet="ab:-# '\"\\\n.01é", max_size=6)),
                 min_size=1, max_size=3).map("".join)
SCALARS = st.one_of(TEXTS, st.integers(-10**6, 10**6), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=True))
KEYS = st.one_of(st.sampled_from(["name", "port", "managedFields", "kubectl.kubernetes.io/last-applied-configuration",
                                  "serviceloadbalancer/lb.host", "yes", "80", "a:b", "x y", "-k"]), TEXTS)
OBJECTS = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=25)
DOCS = st.dictionaries(KEYS, OBJECTS, min_size=1, max_size=5)
PLAIN_KEYS = st.sampled_from(["name", "port", "managedFields", "kubectl.kubernetes.io/last-applied-configuration",
                              "serviceloadbalancer/lb.host", "yes", "80", "f:spec", "a#b", "1.5", "~"])
KUBECTL_DOCS = st.dictionaries(PLAIN_KEYS, st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(PLAIN_KEYS, inner, max_size=4)), max_leaves=25), min_size=1)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS, st.booleans(), st.sampled_from([80, 1000]))
def test_whatever_safe_dump_writes_is_read_as_safe_load_reads_it_or_refused(doc, unicode, width):
    same_or_refused(yaml.safe_dump(doc, allow_unicode=unicode, width=width, default_flow_style=False))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(KUBECTL_DOCS)
def test_whatever_a_kubectl_style_emitter_writes_is_read_as_safe_load_reads_it(doc):
    text = "\n".join(kubectl_yaml(doc)) + "\n"
    same_or_refused(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(KUBECTL_DOCS, st.sampled_from(["name", "port", "yes", "f:spec"]))
def test_a_dropped_mapping_is_refused_exactly_when_it_would_be_if_kept(doc, key):
    """Its plain `key: word` lines are matched, not parsed: that must never accept more."""
    text = "\n".join(kubectl_yaml(doc)) + "\n"
    drop = DROP | {key}
    try:
        kubeyaml.load(text, frozenset())
    except kubeyaml.Unsupported:
        with pytest.raises(kubeyaml.Unsupported):
            kubeyaml.load(text, drop)
        return
    assert same_or_refused(text, drop)


@pytest.mark.parametrize("inside", [
    "      pending:\n      kind: Pod\n        uid: u1\n",  # a key out of place after a pending one
    "      kind: Pod\n        name: p1\n",                # deeper than its mapping
    '      name: "p1\n      uid: u1"\n',                   # a quoted scalar over two lines
    "      name: p1 # a comment\n",
    "      name: p1\n     uid: u1\n",                     # between two columns
    "      name: &a p1\n",
])
def test_what_is_refused_in_a_mapping_kept_is_refused_in_one_dropped(inside):
    text = "items:\n- endpoints:\n  - addresses:\n    - 127.0.0.1\n    targetRef:\n" + inside + "kind: List\n"
    for drop in (frozenset(), frozenset({"targetRef"})):
        with pytest.raises(kubeyaml.Unsupported):
            kubeyaml.load(text, drop)


def test_a_dropped_pod_reference_leaves_the_rest_as_safe_load_reads_it():
    refs = "".join("  - addresses:\n    - 127.0.0.%d\n    nodeName: node-%d\n    targetRef:\n      kind: Pod\n"
                   "      name: web-7d4-%d\n      namespace: team-a\n      uid: 3f6c1c0e-0d1b-4c2a-9a51-%012d\n"
                   "      resourceVersion: \"%d\"\n" % (i, i, i, i, i) for i in range(1, 6))
    text = "items:\n- endpoints:\n" + refs + "  kind: EndpointSlice\nkind: List\n"
    drop = DROP | {"targetRef"}
    assert same_or_refused(text, drop)
    got = kubeyaml.load(text, drop)[0]["items"][0]["endpoints"]
    assert [e["nodeName"] for e in got] == ["node-%d" % i for i in range(1, 6)] and "targetRef" not in got[0]


KUBE_LIKE = st.fixed_dictionaries({
    "apiVersion": st.just("v1"), "kind": st.sampled_from(["Service", "EndpointSlice"]),
    "metadata": st.fixed_dictionaries({"name": st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
                                       "annotations": st.dictionaries(
                                           st.sampled_from(["serviceloadbalancer/lb.host", "a.b/c", "x"]),
                                           st.from_regex(r"[a-z0-9./ :-]{0,20}", fullmatch=True))}),
    "spec": st.fixed_dictionaries({"ports": st.lists(st.fixed_dictionaries(
        {"port": st.integers(1, 65535), "name": st.sampled_from(["http", "on", "yes", "80"])}), max_size=3),
        "selector": st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["web", "no", "1.0"])),
        "clusterIPs": st.lists(st.from_regex(r"10\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True))})})


@settings(max_examples=200, deadline=None)
@given(st.lists(KUBE_LIKE, max_size=4))
def test_kubernetes_like_lists_in_kubectl_style_are_read_here_not_handed_back(items):
    text = "\n".join(kubectl_yaml({"apiVersion": "v1", "items": items, "kind": "List"})) + "\n"
    assert same_or_refused(text)


@pytest.mark.parametrize("text", [
    "a: 1\r\nb: 2\r\n",                        # CRLF
    "a:\n\tb: 1\n",                            # tab
    "a: 1\n---\nb: 2\n",                       # several documents
    "---\na: 1\n",                             # a document start
    "# comment\na: 1\n",                       # comments
    "a: 1 # comment\n",
    "a: &x 1\nb: *x\n",                        # anchors and aliases
    "a: !!str 1\n",                            # tags
    "base: {x: 1}\nother:\n  <<: {y: 2}\n",    # flow mappings, merge keys
    "<<: {}\n",
    '"quoted key": 1\n',                       # quoted keys
    "a: [1, 2]\n",                             # flow sequences
    "- - nested\n  - list\n",                  # nested sequences on one line
    "a: multi\n  line plain\n",                # multi-line plain scalar
    'a: "multi\n  line"\n',                    # multi-line double-quoted scalar
    "a: |+\n  keep\n\n",                       # other block scalars
    "a: >\n  folded\n  text\n",
    "a: |2\n    indented\n",
    "a: |\n\n  late\n",
    "a: 1",                                    # no final line break
    "\ufeffa: 1\n",                            # byte order mark
    "a: x\u2028y\n",                           # a YAML 1.1 line break
    "a: \x85\n",
    "a: b: c\n",                               # not YAML
    "a:\n  b: 1\n c: 2\n",
    "a: 1\n  b: 2\n",
    "- a\nb: 1\n",
    "a:\n- x\n  - y\n",
    "  a: 1\n",                                # an indented root
    "a: 'it''s'\nb: \"\\x41\\ud83d\\ude00\"\n",
])
def test_odd_yaml_is_read_the_same_or_handed_back(text):
    try:
        want = [without(d) for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        want = yaml.YAMLError
    try:
        got = kubeyaml.load(text, DROP)
    except kubeyaml.Unsupported:
        return
    assert repr(got) == repr(want)


@pytest.mark.parametrize("text", ["a: 1\r\nb: 2\r\n", "a:\n\tb: 1\n", "a: 1\n---\nb: 2\n", "a: &x 1\nb: *x\n",
                                  "# c\na: 1\n", "a: [1]\n", "\ufeffa: 1\n", "a: 1"])
def test_what_kubectl_never_writes_is_handed_back(text):
    with pytest.raises(kubeyaml.Unsupported):
        kubeyaml.load(text)


@pytest.mark.parametrize("text", [
    "a: 1\nb: [x, y]\n",
    "kind: Service\n# a comment\nmetadata: {name: web}\n",
    "---\nkind: Service\nmetadata:\n  name: web\n---\nkind: Service\nmetadata:\n  name: api\n",
    "kind: Service\r\nmetadata:\r\n  name: web\r\n",
])
def test_file_source_reads_what_kubeyaml_hands_back(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, newline="")
    names = [s["metadata"]["name"] for s in FileSource(str(path)).fetch().services]
    assert names == [d["metadata"]["name"] for d in yaml.safe_load_all(text) if d and d.get("kind") == "Service"]


def test_values_and_keys_resolve_as_safe_load_resolves_them():
    text = ("a: 1\nb: 1.5\nc: yes\nd: off\ne: ~\nf: null\ng: 2026-01-01\nh: 2026-01-01T00:00:00Z\ni: 0x1f\n"
            "j: 017\nk: 1:30\nl: .inf\nm: 1_000\nn: 10.96.0.1\no: \"80\"\np: '8''0'\nq: \"\\u00e9\\t\\\"\\/\"\n"
            "80: port\nyes: true\nid1: 3f2504e0-4f89-11d3-9a0c-0305e82c3301\nid2: 12345678-1234-1234-1234-123456789abc\nip: 10.244.1.2\nrv: \"1001\"\nY1: Yes\nY2: YES\nY3: NULL\nY4: True\nY5: Off\nr: {}\ns: []\nt: |\n  x\n\n   y\n\nu: |-\n  z\nv:\nw:\n- 1\n- {}\n- []\n"
            "- x: 1\n  y:\n  - z\n")
    assert same_or_refused(text)
    assert same_or_refused(text, frozenset(("t", "w", "r", "a")))


def test_unsupported_is_yamlstreams():
    assert kubeyaml.Unsupported is yamlstream.Unsupported
