"""Kubernetes Events from the daemon, against the fake API: the right Events on the right
Services, one Event per lasting problem with a growing count, none once fixed, hostile
values never in an Event, a 403 survived, core v1 where events.k8s.io is not served."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeApi
from tests.helpers.lbsync_proc import LbsyncProcess

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy binary not installed")]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
P = "serviceloadbalancer/"
HOSTILE = "evil.example.com\n  use_backend stolen if TRUE"
POD = "lbsync-5d8f7c9b4-x2x7q"
EXPECTED = {  # (namespace, service, reason) -> type
    ("other", "new", "HostConflictLost"): "Warning",
    ("shop", "tls", "TLSWithoutCertificate"): "Warning",
    ("shop", "empty", "NoReadyEndpoints"): "Normal",
    ("shop", "sneaky", "EndpointsInDeniedNetwork"): "Warning",
    ("shop", "sneaky", "NoReadyEndpoints"): "Normal",
    ("shop", "hostile", "InvalidAnnotation"): "Warning",
}


def service(api, name, ns, annotations=None, created="2026-01-02T00:00:00Z", ready=("10.0.0.1",)):
    obj = objects.service(name, ns, [("http", 80, 8080)], annotations=annotations or {})
    obj["metadata"]["creationTimestamp"] = created
    api.store.put("services", obj)
    api.set_endpoints(ns, name, ready=list(ready))


def cluster(api):
    service(api, "old", "shop", {P + "lb.host": "shop.example.com"}, created="2026-01-01T00:00:00Z")
    service(api, "new", "other", {P + "lb.host": "shop.example.com"})
    service(api, "tls", "shop", {P + "lb.sslTerm": "true", P + "lb.host": "tls.example.com"})
    service(api, "empty", "shop", ready=())
    service(api, "sneaky", "shop", ready=("169.254.169.254",))
    service(api, "hostile", "shop", {P + "lb.host": HOSTILE})
    service(api, "quiet", "shop", {P + "lb.ignore": "true"})  # the owner's choice: no Event
    service(api, "kube-dns", "kube-system")  # excluded by settings: no Event


def daemon(tmp_path, api, *extra):
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none")
    return LbsyncProcess(["--kubeconfig", kubeconfig, "--haproxy-config", str(tmp_path / "haproxy.cfg"),
                          "--interval", "0.3", "--http-bind", "127.0.0.1:18080", "--api-timeout", "2", *extra],
                         env={"POD_NAME": POD})


def by_key(api, version="events.k8s.io/v1"):
    out = {}
    for e in api.events.list(version, None, "")[1]["items"]:
        ref = e["regarding"] if version != "v1" else e["involvedObject"]
        out.setdefault((ref["namespace"], ref["name"], e["reason"]), []).append(e)
    return out


def wait_until(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met within %ss" % timeout)


def count(event):
    return (event.get("series") or {}).get("count", 1)


@pytest.fixture
def api():
    a = FakeKubeApi(anonymous=True).start()
    cluster(a)
    yield a
    a.stop()


def test_the_expected_events_appear_on_the_right_services_and_hostile_values_never(tmp_path, api):
    with daemon(tmp_path, api) as d:
        d.event("config.applied")
        found = wait_until(lambda: (lambda f: f if set(EXPECTED) <= set(f) else None)(by_key(api)))
        assert set(found) == set(EXPECTED)  # not for lb.ignore, kube-system, or the conflict's winner
        for (ns, name, reason), events in found.items():
            uid = api.store.get("services", ns, name)["metadata"]["uid"]
            assert len(events) == 1, events
            e = events[0]
            assert e["metadata"]["namespace"] == ns and e["type"] == EXPECTED[(ns, name, reason)]
            assert e["regarding"] == {"kind": "Service", "apiVersion": "v1", "namespace": ns, "name": name,
                                      "uid": uid}
            assert (e["reportingController"], e["reportingInstance"], e["action"]) == ("lbsync", POD, "Routing")
            assert e["eventTime"] and 0 < len(e["note"]) <= 400
        conflict = found[("other", "new", "HostConflictLost")][0]["note"]
        assert "shop.example.com" in conflict and "shop/old:80" in conflict  # names the winner
        assert "lb.host" in found[("shop", "hostile", "InvalidAnnotation")][0]["note"]
        dumped = json.dumps(api.events.all())
        for part in ("use_backend", "stolen", "evil.example.com"):
            assert part not in dumped


def test_a_lasting_problem_is_one_event_whose_count_grows_and_a_fixed_one_stops(tmp_path, api):
    key = ("shop", "tls", "TLSWithoutCertificate")
    with daemon(tmp_path, api) as d:
        d.event("config.applied")
        first = wait_until(lambda: by_key(api).get(key))
        grown = wait_until(lambda: [e for e in by_key(api).get(key, []) if count(e) >= 8])
        assert len(by_key(api)[key]) == 1 and grown[0]["metadata"]["name"] == first[0]["metadata"]["name"]
        assert grown[0]["series"]["lastObservedTime"] > first[0]["eventTime"]
        api.update_service("shop", "tls", lambda s: s["metadata"]["annotations"].pop(P + "lb.sslTerm"))
        mark = d.mark
        d.event("config.applied", after=mark)
        settled = by_key(api)[key]
        other = ("shop", "empty", "NoReadyEndpoints")
        then = count(by_key(api)[other][0])
        wait_until(lambda: count(by_key(api)[other][0]) >= 2 * then)  # passes went on, seeing that one
        assert by_key(api)[key] == settled  # no new Event, no count moving on


def test_forbidden_events_log_one_warning_and_syncing_carries_on(tmp_path, api):
    api.deny("events")
    with daemon(tmp_path, api) as d:
        d.event("config.applied")
        forbidden = d.event("events.forbidden")
        assert "create events" in forbidden["error"] and forbidden["namespace"] in ("other", "shop")
        mark = d.mark
        api.set_endpoints("shop", "old", ready=["10.0.0.1", "10.0.0.2"])
        d.event("config.applied", after=mark)  # the next change is applied as usual
        writes = [r for r in api.requests if r.method in ("POST", "PATCH")]
        time.sleep(1.5)
        assert [r for r in api.requests if r.method in ("POST", "PATCH")] == writes  # paused, not hammered
        assert len(writes) == 2  # one try in each namespace, then left alone
        assert d.count("events.forbidden") == 1 and d.count("sync.failed") == 0
        assert api.events.all() == []


def test_core_v1_events_where_events_k8s_io_is_not_served(tmp_path):
    api = FakeKubeApi(anonymous=True, serve_events_v1=False).start()
    try:
        cluster(api)
        with daemon(tmp_path, api) as d:
            d.event("config.applied")
            key = ("shop", "tls", "TLSWithoutCertificate")
            event = wait_until(lambda: [e for e in by_key(api, "v1").get(key, []) if e.get("count", 0) >= 4])[0]
        assert event["source"] == {"component": "lbsync", "host": POD} and event["type"] == "Warning"
        assert event["lastTimestamp"] >= event["firstTimestamp"]
        paths = {r.path for r in api.requests if r.method in ("POST", "PATCH")}
        assert paths and all(p.startswith("/api/v1/namespaces/") for p in paths)
    finally:
        api.stop()


def test_events_false_writes_none(tmp_path, api):
    with daemon(tmp_path, api, "--events", "false") as d:
        d.event("config.applied")
        time.sleep(1.0)
    assert not [r for r in api.requests if "events" in r.path]


@pytest.mark.parametrize("dry_run", [False, True])
def test_once_writes_each_event_once_and_a_dry_run_none(tmp_path, api, dry_run):
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none")
    argv = [sys.executable, "-m", "lbsync", "--once", "--kubeconfig", kubeconfig, "--haproxy-config",
            str(tmp_path / "haproxy.cfg"), "--http-bind", "127.0.0.1:18080", "--log-format", "json"]
    proc = subprocess.run(argv + (["--dry-run"] if dry_run else []), capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
    assert proc.returncode == (1 if dry_run else 0), proc.stderr
    found = by_key(api)
    if dry_run:
        assert found == {} and not [r for r in api.requests if "events" in r.path]
    else:
        assert set(found) == set(EXPECTED) and all(len(v) == 1 and "series" not in v[0] for v in found.values())
