"""The real kubectl accepts the fake API: discovery, lists, TLS, bearer token and client cert.

If kubectl can read the fake, the fake's JSON is shaped like the real API's, which is what
makes the ApiSource tests against it worth anything.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import List

import pytest
import yaml

from tests.fakeapi.fixtures import fake_api_tls, fake_tls_material  # noqa: F401
from tests.fakeapi.samples import wso2_cluster

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not os.access(KUBECTL, os.X_OK), reason="kubectl not installed")]


@pytest.fixture
def kubectl(fake_api_tls, tmp_path):  # noqa: F811
    wso2_cluster(fake_api_tls)
    kubeconfig = fake_api_tls.write_kubeconfig(str(tmp_path / "kubeconfig"))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}  # no cache, no other config

    def run(*args: str, config: str = kubeconfig) -> str:
        argv: List[str] = [KUBECTL, "--kubeconfig", config, "--request-timeout", "10s", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    return run


def test_get_yaml(kubectl):
    doc = yaml.safe_load(kubectl("get", "services,endpointslices", "-A", "-o", "yaml"))
    assert doc["kind"] == "List"
    kinds = {(i["kind"], i["metadata"]["namespace"], i["metadata"]["name"]) for i in doc["items"]}
    assert ("Service", "wso2", "wso2am") in kinds and ("Service", "default", "kubernetes") in kinds
    slices = [i for i in doc["items"] if i["kind"] == "EndpointSlice"]
    assert len(slices) == 5 and all(s["apiVersion"] == "discovery.k8s.io/v1" for s in slices)
    am = next(i for i in doc["items"] if i["kind"] == "Service" and i["metadata"]["name"] == "wso2am")
    assert [p["port"] for p in am["spec"]["ports"]] == [9443, 9763, 8243, 8280, 7611, 7711]


def test_get_json_with_short_names(kubectl):
    doc = json.loads(kubectl("get", "svc,ep", "-n", "wso2", "-o", "json"))
    items = {(i["kind"], i["metadata"]["name"]) for i in doc["items"]}
    assert ("Endpoints", "wso2am") in items and ("Service", "wso2am-mysql") in items
    ep = next(i for i in doc["items"] if i["kind"] == "Endpoints" and i["metadata"]["name"] == "wso2am")
    assert len(ep["subsets"][0]["notReadyAddresses"]) == 1


def test_get_endpoints_table(kubectl):
    out = kubectl("get", "endpoints", "-A")
    for name in ("kubernetes", "kube-dns", "wso2am", "wso2am-mysql"):
        assert name in out


def test_selector_and_single_object(kubectl):
    out = kubectl("get", "services", "-A", "-l", "app in (wso2am,wso2am-mysql)", "-o", "name")
    assert sorted(out.split()) == ["service/wso2am", "service/wso2am-mysql"]
    doc = yaml.safe_load(kubectl("get", "service", "wso2am", "-n", "wso2", "-o", "yaml"))
    assert doc["kind"] == "Service" and doc["spec"]["type"] == "NodePort"


def test_paging_with_chunk_size(fake_api_tls, kubectl):  # noqa: F811
    fake_api_tls.populate(25, 1, namespaces=["bench"])
    fake_api_tls.reset_counters()
    out = kubectl("get", "services", "-n", "bench", "--chunk-size", "10", "-o", "name")
    assert len(out.split()) == 25
    assert fake_api_tls.request_count("/api/v1/namespaces/bench/services") == 3


def test_client_certificate(fake_api_tls, kubectl, tmp_path):  # noqa: F811
    config = fake_api_tls.write_kubeconfig(str(tmp_path / "cert-kubeconfig"), auth="cert", inline=True)
    assert "wso2am" in kubectl("get", "svc", "-n", "wso2", "-o", "name", config=config)
    assert fake_api_tls.requests[-1].user == "lbsync-client"


def test_get_nodes_yaml_selector_and_single_node(fake_api_tls, kubectl):  # noqa: F811
    fake_api_tls.add_node("node-a", "127.0.0.11", labels={"node-role.kubernetes.io/edge": ""})
    fake_api_tls.add_node("node-b", "127.0.0.12", external="203.0.113.12",
                          taints=[{"key": "ToBeDeletedByClusterAutoscaler", "value": "1", "effect": "NoSchedule"}])
    doc = yaml.safe_load(kubectl("get", "nodes", "-o", "yaml"))
    assert doc["kind"] == "List" and [i["kind"] for i in doc["items"]] == ["Node", "Node"]
    a, b = doc["items"]
    assert "namespace" not in a["metadata"] and a["metadata"]["resourceVersion"]
    assert {"type": "InternalIP", "address": "127.0.0.11"} in a["status"]["addresses"]
    assert {"type": "ExternalIP", "address": "203.0.113.12"} in b["status"]["addresses"]
    assert b["spec"]["taints"][0]["key"] == "ToBeDeletedByClusterAutoscaler"
    out = kubectl("get", "nodes", "-l", "node-role.kubernetes.io/edge", "-o", "name")
    assert out.split() == ["node/node-a"]
    one = yaml.safe_load(kubectl("get", "node", "node-b", "-o", "yaml"))
    assert one["kind"] == "Node" and one["metadata"]["name"] == "node-b"
    assert "node-a" in kubectl("get", "no")  # the short name, from discovery; the default table
    fake_api_tls.delete_node("node-a")
    assert kubectl("get", "nodes", "-o", "name").split() == ["node/node-b"]


def test_watch_stream_is_read_by_kubectl(fake_api_tls, tmp_path):  # noqa: F811
    """`kubectl get services -A --watch -o json` lists, then watches from the list's RV and
    prints each event the fake streams: the watch format is the real one."""
    wso2_cluster(fake_api_tls)
    kubeconfig = fake_api_tls.write_kubeconfig(str(tmp_path / "kubeconfig"))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    argv = [KUBECTL, "--kubeconfig", kubeconfig, "get", "services", "-A", "--watch", "-o", "json",
            "--output-watch-events"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait(lambda: fake_api_tls.open_watches("services") == 1)
        fake_api_tls.add_service("late", "shop", [("http", 80, 8080)])
        fake_api_tls.update_service("shop", "late", lambda s: s["metadata"].setdefault("labels", {}).update(v="2"))
        fake_api_tls.delete_service("shop", "late")
        _wait(lambda: fake_api_tls.open_watches("services") == 1 and len(fake_api_tls.requests) > 0, 0.5)
    finally:
        time.sleep(1.0)
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    watch = [r for r in fake_api_tls.requests if r.query.get("watch") in ("1", "true")]
    listed = [r for r in fake_api_tls.requests if r.path == "/api/v1/services" and "watch" not in r.query]
    assert watch and listed and watch[0].query["resourceVersion"]  # list, then watch from its RV
    events = [json.loads(doc) for doc in _json_docs(out)]
    late = [(e["type"], e["object"]["metadata"].get("labels", {}).get("v")) for e in events
            if e["object"]["metadata"]["name"] == "late"]
    assert late == [("ADDED", None), ("MODIFIED", "2"), ("DELETED", "2")], err
    assert all(e["object"]["kind"] == "Service" for e in events)


def test_node_watch_stream_is_read_by_kubectl(fake_api_tls, tmp_path):  # noqa: F811
    """`kubectl get nodes --watch -o json`: the cluster-scoped watch lbsync's nodeport mode uses."""
    fake_api_tls.add_node("node-a", "127.0.0.11")
    kubeconfig = fake_api_tls.write_kubeconfig(str(tmp_path / "kubeconfig"))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    argv = [KUBECTL, "--kubeconfig", kubeconfig, "get", "nodes", "--watch", "-o", "json", "--output-watch-events"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait(lambda: fake_api_tls.open_watches("nodes") == 1)
        fake_api_tls.add_node("node-b", "127.0.0.12")
        fake_api_tls.update_node("node-b", lambda n: n["metadata"]["labels"].update(zone="z1"))
        fake_api_tls.delete_node("node-b")
    finally:
        time.sleep(1.0)
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    events = [json.loads(doc) for doc in _json_docs(out)]
    seen = [(e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["labels"].get("zone"))
            for e in events]
    assert seen == [("ADDED", "node-a", None), ("ADDED", "node-b", None), ("MODIFIED", "node-b", "z1"),
                    ("DELETED", "node-b", "z1")], err
    assert all(e["object"]["kind"] == "Node" for e in events)


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def _json_docs(text: str):
    """Split kubectl's concatenated pretty-printed JSON documents."""
    decoder, i = json.JSONDecoder(), 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, end = decoder.raw_decode(text, i)
        yield json.dumps(doc)
        i = end
