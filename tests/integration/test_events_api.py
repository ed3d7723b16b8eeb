"""The Event reporter and sink against the fake API (in-process, a fake clock), the fake's
Events behaving like kube-apiserver's, and what the real kubectl shows of lbsync's Events."""
import os
import shutil
import subprocess
import time

import pytest
import requests
import yaml

from lbsync import events
from lbsync.kube import credentials
from lbsync.kube.events import EventSink
from lbsync.topology import Problem
from tests.fakeapi.fixtures import fake_api, fake_api_tls, fake_tls_material  # noqa: F401

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
pytestmark = pytest.mark.integration
TLS = "serviceloadbalancer/lb.sslTerm"


class Clock:
    def __init__(self):
        self.now = 1_790_000_000.0

    def __call__(self):
        return self.now


def reporter(api, tmp_path, **kw):
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none" if not api.tls else "token")
    sink = EventSink(credentials.load(kubeconfig, None), instance="lb-0")
    clock = Clock()
    return events.EventReporter(sink, clock=clock, **kw), clock


def problems_for(api, names, ns="shop", code="TLSWithoutCertificate"):
    uids, found = {}, []
    for name in names:
        svc = api.store.get("services", ns, name) or api.add_service(name, ns, [("http", 80, 8080)])
        uids[(ns, name)] = svc["metadata"]["uid"]
        found.append(Problem(ns, name, TLS, "port 80: no TLS certificate is configured (tls_cert); route "
                             "left out", code=code))
    return found, uids


def test_a_pass_writes_at_most_its_cap_and_the_rest_follow_at_the_average_rate(fake_api, tmp_path):  # noqa: F811
    rep, clock = reporter(fake_api, tmp_path, per_pass=25, rate=1.0)
    problems, uids = problems_for(fake_api, ["web%d" % i for i in range(60)])
    first = rep.observe(problems, uids)
    assert (first["created"], first["deferred"], len(fake_api.events.all())) == (25, 35, 25)
    assert rep.observe(problems, uids)["created"] == 0  # no time passed: no tokens
    clock.now += 10
    assert rep.observe(problems, uids)["created"] == 10 and len(fake_api.events.all()) == 35
    clock.now += 100
    assert rep.observe(problems, uids)["created"] == 25  # the cap, however long the pause
    clock.now += 100
    done = rep.observe(problems, uids)  # the last 0 to create, then series updates
    assert len(fake_api.events.all()) == 60 and done["created"] == 0 and done["patched"] > 0


def test_new_events_and_warnings_go_before_series_updates(fake_api, tmp_path):  # noqa: F811
    rep, clock = reporter(fake_api, tmp_path, per_pass=2, rate=100.0)
    old, uids = problems_for(fake_api, ["old"])
    rep.observe(old, uids)
    clock.now += 1
    new, more = problems_for(fake_api, ["a", "b"], code="NoReadyEndpoints")
    warn, most = problems_for(fake_api, ["c"])
    new = [Problem(p.namespace, p.service, "", "port 80 has no ready endpoints", "info", p.code) for p in new]
    done = rep.observe(old + new + warn, {**uids, **more, **most})  # old's series is due (count 2) too
    assert done == {"created": 2, "patched": 0, "failed": 0, "deferred": 2}
    written = {e["regarding"]["name"]: e["type"] for e in fake_api.events.all()}
    assert written == {"old": "Warning", "c": "Warning", "a": "Normal"}


def test_an_expired_event_is_created_again_under_a_new_name(fake_api, tmp_path):  # noqa: F811
    rep, clock = reporter(fake_api, tmp_path)
    problems, uids = problems_for(fake_api, ["web"])
    rep.observe(problems, uids)
    name = fake_api.events.all()[0]["metadata"]["name"]
    fake_api.events.delete("shop", name)  # the apiserver's 1 h TTL
    clock.now += 1
    assert rep.observe(problems, uids)["failed"] == 1  # the PATCH met a 404
    clock.now += 1
    assert rep.observe(problems, uids)["created"] == 1
    (again,) = fake_api.events.all()
    assert again["metadata"]["name"] != name and again["series"]["count"] == 3


def test_a_problem_that_comes_back_is_a_new_event(fake_api, tmp_path):  # noqa: F811
    rep, clock = reporter(fake_api, tmp_path)
    problems, uids = problems_for(fake_api, ["web"])
    rep.observe(problems, uids)
    rep.observe([], uids)
    clock.now += 1
    rep.observe(problems, uids)
    assert [count for count in (e.get("series") for e in fake_api.events.all())] == [None, None]


def test_an_unwell_api_stops_the_writes_of_a_pass_and_they_follow_later(fake_api, tmp_path):  # noqa: F811
    rep, clock = reporter(fake_api, tmp_path)
    problems, uids = problems_for(fake_api, ["a", "b", "c"])
    fake_api.fail_next(10, 503, path="/apis/events.k8s.io/v1/namespaces/")
    assert rep.observe(problems, uids) == {"created": 0, "patched": 0, "failed": 1, "deferred": 2}
    fake_api.clear_faults()
    clock.now += 5
    assert rep.observe(problems, uids)["created"] == 3
    assert sorted(e["series"]["count"] for e in fake_api.events.all()) == [2, 2, 2]  # the passes so far


def test_a_forbidden_namespace_is_tried_again_after_the_pause(fake_api, tmp_path):  # noqa: F811
    rep, clock = reporter(fake_api, tmp_path)
    problems, uids = problems_for(fake_api, ["a", "b"])
    fake_api.deny("events")
    assert rep.observe(problems, uids)["failed"] == 1  # one try; the namespace is then left alone
    clock.now += events.FORBIDDEN_PAUSE - 1
    assert rep.observe(problems, uids) == {"created": 0, "patched": 0, "failed": 0, "deferred": 0}
    fake_api.allow("events")  # RBAC fixed while lbsync runs
    clock.now += 2
    assert rep.observe(problems, uids)["created"] == 2


def test_notes_hold_only_printable_text_and_only_our_annotation_keys():
    p = Problem("shop", "web", "serviceloadbalancer/lb.x\nuse_backend evil", "unknown annotation (typo?); "
                "ignored", code="UnknownAnnotation")
    assert events.note_text(p) == "unknown annotation (typo?); ignored"
    long = Problem("shop", "web", "serviceloadbalancer/lb.host", "é" + "x" * 2000, code="InvalidAnnotation")
    text = events.note_text(long)
    assert text.startswith("serviceloadbalancer/lb.host: ?xx") and len(text) == events.NOTE_LIMIT


# -- the fake API's Events behave like kube-apiserver's ------------------------------------------------
def event(name="web.1", ns="shop", **extra):
    body = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": name, "namespace": ns},
            "eventTime": "2026-11-29T10:00:00.000000Z", "reportingController": "lbsync",
            "reportingInstance": "lb-0", "action": "Routing", "reason": "TLSWithoutCertificate",
            "type": "Warning", "note": "n", "regarding": {"kind": "Service", "namespace": ns, "name": "web"}}
    body.update(extra)
    return body


@pytest.mark.parametrize("body, status", [
    (event(), 201),
    (dict(event(), metadata={"generateName": "web.", "namespace": "shop"}), 201),
    (dict(event(), metadata={"namespace": "shop"}), 422),  # no name
    (event(ns="other"), 400),  # the body's namespace is not the URL's
    (event(name="Web_1"), 422),
    (event(type="Error"), 422),
    (event(reportingController=""), 422),
    (event(series={"count": 1, "lastObservedTime": "2026-11-29T10:00:00.000000Z"}), 422),
    (event(deprecatedCount=3), 422),
    (event(note="x" * 1025), 422),
])
def test_the_fake_validates_events_k8s_io_creates_like_the_apiserver(fake_api, body, status):  # noqa: F811
    fake_api.add_service("web", "shop")
    r = requests.post(fake_api.url + "/apis/events.k8s.io/v1/namespaces/shop/events", json=body, timeout=5)
    assert r.status_code == status, r.text
    if status == 201:
        assert r.json()["metadata"]["name"].startswith("web.") and r.json()["metadata"]["uid"]


def test_the_fake_answers_409_404_and_keeps_event_fields_immutable(fake_api):  # noqa: F811
    fake_api.add_service("web", "shop")
    base = fake_api.url + "/apis/events.k8s.io/v1/namespaces/"
    assert requests.post(base + "shop/events", json=event(), timeout=5).status_code == 201
    assert requests.post(base + "shop/events", json=event(), timeout=5).json()["reason"] == "AlreadyExists"
    assert requests.post(base + "nowhere/events", json=event(ns="nowhere"), timeout=5).status_code == 404
    smp = {"Content-Type": "application/strategic-merge-patch+json"}
    series = {"series": {"count": 2, "lastObservedTime": "2026-11-29T10:01:00.000000Z"}}
    assert requests.patch(base + "shop/events/web.1", json=series, headers=smp, timeout=5).status_code == 200
    assert requests.patch(base + "shop/events/web.2", json=series, headers=smp, timeout=5).status_code == 404
    assert requests.patch(base + "shop/events/web.1", json={"reason": "Other"}, headers=smp,
                          timeout=5).status_code == 422
    assert requests.patch(base + "shop/events/web.1", json=series, timeout=5).status_code == 415
    core = fake_api.url + "/api/v1/namespaces/shop/events"
    legacy = {"metadata": {"name": "web.3"}, "involvedObject": {"kind": "Service", "namespace": "other",
                                                                "name": "web"}, "reason": "X", "message": "m"}
    assert requests.post(core, json=legacy, timeout=5).status_code == 422  # namespace of the object
    listed = requests.get(core, params={"fieldSelector": "involvedObject.name=web"}, timeout=5).json()
    assert [(e["reason"], e["series"]["count"]) for e in listed["items"]] == [("TLSWithoutCertificate", 2)]


def test_the_fake_can_serve_only_core_events_and_forbid_them(fake_api):  # noqa: F811
    fake_api.add_service("web", "shop")
    fake_api.serve_events_v1 = False
    assert requests.get(fake_api.url + "/apis/events.k8s.io/v1", timeout=5).status_code == 404
    assert requests.post(fake_api.url + "/apis/events.k8s.io/v1/namespaces/shop/events", json=event(),
                         timeout=5).status_code == 404
    fake_api.deny("events")
    r = requests.post(fake_api.url + "/api/v1/namespaces/shop/events", json=event(), timeout=5)
    assert r.status_code == 403 and 'cannot create resource "events"' in r.json()["message"]


# -- the real kubectl -------------------------------------------------------------------------------
@pytest.fixture
def kubectl(fake_api_tls, tmp_path):  # noqa: F811
    if not os.access(KUBECTL, os.X_OK):
        pytest.skip("kubectl not installed")
    kubeconfig = fake_api_tls.write_kubeconfig(str(tmp_path / "kubeconfig"))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}

    def run(*args, ok=True):
        proc = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "--request-timeout", "10s", *args],
                              capture_output=True, text=True, env=env, timeout=60)
        assert (proc.returncode == 0) == ok, proc.stderr
        return proc.stdout + proc.stderr
    return run


def test_kubectl_shows_lbsyncs_events_on_the_service(fake_api_tls, kubectl, tmp_path):  # noqa: F811
    rep, clock = reporter(fake_api_tls, tmp_path)
    clock.now = time.time() - 40  # kubectl prints ages against its own clock
    problems, uids = problems_for(fake_api_tls, ["web"])
    for _ in range(4):
        clock.now += 10
        rep.observe(problems, uids)
    (e,) = yaml.safe_load(kubectl("get", "events", "-n", "shop", "-o", "yaml"))["items"]
    assert (e["reason"], e["type"], e["series"]["count"], e["reportingComponent"]) == \
        ("TLSWithoutCertificate", "Warning", 4, "lbsync")
    assert e["involvedObject"]["uid"] == uids[("shop", "web")] and e["message"].startswith(TLS)
    described = kubectl("describe", "service", "web", "-n", "shop")
    line = next(x for x in described.splitlines() if "TLSWithoutCertificate" in x)
    assert line.split()[0] == "Warning" and "(x4 over 30s)" in line and "lbsync" in line


def test_kubectl_creates_and_patches_events_in_the_fake(fake_api_tls, kubectl, tmp_path):  # noqa: F811
    fake_api_tls.add_service("web", "shop")
    manifest = tmp_path / "event.yaml"
    manifest.write_text(yaml.safe_dump(dict(event(), metadata={"generateName": "web.", "namespace": "shop"})))
    name = kubectl("create", "--validate=false", "-f", str(manifest), "-o", "name").strip()  # no openapi
    assert name.startswith("event.events.k8s.io/web.")
    kubectl("patch", "events.v1.events.k8s.io", name.split("/")[1], "-n", "shop", "--type", "merge", "-p",
            '{"series": {"count": 2, "lastObservedTime": "2026-11-29T10:05:00.000000Z"}}')
    kubectl("patch", "events.v1.events.k8s.io", name.split("/")[1], "-n", "shop", "-p",
            '{"series": {"count": 3, "lastObservedTime": "2026-11-29T10:06:00.000000Z"}}')  # strategic
    (e,) = fake_api_tls.events.all()
    assert e["series"] == {"count": 3, "lastObservedTime": "2026-11-29T10:06:00.000000Z"}
    out = kubectl("patch", "events.v1.events.k8s.io", "web.nope", "-n", "shop", "--type", "merge", "-p",
                  '{"note": "x"}', ok=False)
    assert "NotFound" in out or "not found" in out
