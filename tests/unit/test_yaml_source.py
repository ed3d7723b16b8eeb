"""YAML sources: built from libyaml's event stream exactly as yaml.safe_load builds them, and a
cluster as YAML or as JSON renders the same bytes."""
import json
import os

import pytest
import yaml

from lbsync import model, render, settings as settings_mod, sync, yamlstream
from lbsync.source import FileSource

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden")
CASES = sorted(d for d in os.listdir(GOLDEN) if os.path.isfile(os.path.join(GOLDEN, d, "cluster.yaml")))

PLAIN = """
a: 1
b: [1, 2.5, -3, 0x1f, 0o17, 017, 1_000, 1:30]
c: {x: yes, y: No, z: off, w: ~, v: null, u: ''}
d: "quoted: 80"
e: '*.example.com'
f: |
  line one
    indented
g: >-
  folded
  text
h: 2026-01-01T00:00:00Z
i: 2026-01-01
j: .inf
k: -.NaN
80: port key
? plain key
: value
l:
- - nested
  - list
- {}
- []
m: "esc\\u00e9 \\t tab \\" quote"
n: multi
  line plain
---
second: document
---
"""


def test_plain_yaml_is_built_as_safe_load_builds_it():
    got = yamlstream.load_all(PLAIN)
    want = [d for d in yaml.safe_load_all(PLAIN) if d is not None]
    assert repr(got) == repr(want)  # repr: nan != nan, and types must match too (1 vs 1.0 vs True)


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x\n",                       # anchors and aliases
    "a: !!str 1\n",                           # explicit tags
    "base: &b {x: 1}\nother:\n  <<: *b\n",    # merge keys
    "? [a, b]\n: 1\n",                        # a list as a key
])
def test_yaml_beyond_plain_data_is_left_to_yaml_load(text):
    with pytest.raises(yamlstream.Unsupported):
        yamlstream.load_all(text)


def test_file_source_reads_yaml_beyond_plain_data(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("x: &svc\n  kind: Service\n  metadata: {name: web, namespace: a}\nitems: []\n---\n"
                    "kind: Service\nmetadata: {name: api, namespace: a}\nspec: {ports: [{port: 80}]}\n")
    snap = FileSource(str(path)).fetch()
    assert [s["metadata"]["name"] for s in snap.services] == ["api"]


def test_managed_fields_and_last_applied_copies_are_never_kept(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kind: Service\nmetadata:\n  name: web\n  managedFields:\n  - manager: kubectl\n"
                    "    fieldsV1: {f:spec: {}}\n  annotations:\n"
                    "    kubectl.kubernetes.io/last-applied-configuration: |\n      {\"a\": 1}\n"
                    "    serviceloadbalancer/lb.host: web.example.com\n")
    meta = FileSource(str(path)).fetch().services[0]["metadata"]
    assert meta == {"name": "web", "annotations": {"serviceloadbalancer/lb.host": "web.example.com"}}


def render_file(path):
    s = settings_mod.Settings(http_bind="127.0.0.1:18080", https_bind="127.0.0.1:18443", stats_bind="",
                              tls_cert=os.path.join(GOLDEN, "_tls", "lb.pem"), haproxy_version="2.6")
    topology = model.build(FileSource(path).fetch(), sync.options_from(s))
    return render.Renderer(sync.frame_from(s)).render(topology)


@pytest.mark.parametrize("case", CASES)
def test_yaml_and_json_sources_render_identical_bytes(case, tmp_path):
    src = os.path.join(GOLDEN, case, "cluster.yaml")
    with open(src) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    as_json = tmp_path / "cluster.json"
    as_json.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}, default=str))
    assert render_file(src) == render_file(str(as_json))
