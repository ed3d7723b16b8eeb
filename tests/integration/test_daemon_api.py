"""The daemon against the fake API server: outages, bad answers, token rotation, the shrink guard."""
import shutil
import time

import pytest

from tests.fakeapi.server import FakeKubeApi
from tests.helpers.backends import free_port
from tests.helpers.lbsync_proc import LbsyncProcess, http

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy binary not installed")]


def populate(api, count=6):
    for i in range(count):
        api.add_service(f"web{i}", "shop", [("http", 80, 8080)],
                        annotations={"serviceloadbalancer/lb.host": f"web{i}.example.com"})
        api.set_endpoints("shop", f"web{i}", ready=[f"10.0.{i}.1", f"10.0.{i}.2"])


def daemon(tmp_path, kubeconfig, *extra):
    return LbsyncProcess(["--kubeconfig", str(kubeconfig), "--haproxy-config", str(tmp_path / "haproxy.cfg"),
                          "--interval", "0.3", "--http-bind", "127.0.0.1:18080", "--api-timeout", "1",
                          *extra])


@pytest.fixture
def api():
    a = FakeKubeApi(anonymous=True).start()
    populate(a)
    yield a
    a.stop()


def unchanged_during(path, seconds):
    before = (path.stat().st_mtime_ns, path.read_text())
    time.sleep(seconds)
    return (path.stat().st_mtime_ns, path.read_text()) == before


@pytest.mark.parametrize("fault", ["down", "503", "500-empty", "429", "html", "truncated", "slow", "403",
                                   "401"])
def test_api_faults_never_touch_the_live_config_and_the_daemon_recovers(tmp_path, api, fault):
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none")
    metrics = free_port()
    cfg = tmp_path / "haproxy.cfg"
    with daemon(tmp_path, kubeconfig, "--metrics-bind", f"127.0.0.1:{metrics}") as d:
        d.event("config.applied")
        mark = d.mark
        if fault == "down":
            api.stop()
        elif fault == "slow":
            api.set_delay(3.0)
        elif fault == "403":
            api.deny("services")
        elif fault == "401":
            api.anonymous = False
        else:
            kinds = {"503": dict(status=503, body="status"), "500-empty": dict(status=500, body="empty"),
                     "429": dict(status=429, body="status", retry_after=1)}
            if fault in kinds:
                api.fail_next(1000, **kinds[fault])
            elif fault == "html":
                api.html_next(1000)
            else:
                api.truncate_next(1000)
        failed = d.event("sync.failed", after=mark, timeout=10)
        assert failed["error"] and "Traceback" not in "".join(d.raw)
        assert unchanged_during(cfg, 1.5)
        assert d.count("sync.failed") == 1  # once per state change, not per retry
        if fault == "down":
            api.start()
        else:
            api.clear_faults()
            api.set_delay(0.0)
            api.allow("services")
            api.anonymous = True
        api.set_endpoints("shop", "web0", ready=["10.0.0.1", "10.0.0.3"])  # a real change after recovery
        d.event("sync.recovered", after=mark, timeout=20)
        d.wait_for(lambda e: e.get("event") == "config.applied", after=mark, timeout=10)
        assert "10.0.0.3:8080" in cfg.read_text()
        assert http(f"http://127.0.0.1:{metrics}/readyz")[0] == 200


def test_error_messages_name_the_url_status_and_reason(tmp_path, api):
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none")
    with daemon(tmp_path, kubeconfig) as d:
        d.event("config.applied")
        api.deny("endpointslices")
        api.deny("endpoints")
        failed = d.event("sync.failed", timeout=10)
    assert "403" in failed["error"] and "endpoints" in failed["error"]
    assert "/api" in failed["error"]


def test_a_poll_that_would_wipe_most_backends_is_refused(tmp_path, api):
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none")
    cfg = tmp_path / "haproxy.cfg"
    with daemon(tmp_path, kubeconfig) as d:
        d.event("config.applied")
        for i in range(5):
            api.delete_service("shop", f"web{i}")
        failed = d.event("sync.failed", timeout=10)
        assert "refusing to apply" in failed["error"]
        assert "web0.example.com" in cfg.read_text()
        # a deliberate change of that size goes through with the guard relaxed
    once = LbsyncProcess(["--kubeconfig", str(kubeconfig), "--haproxy-config", str(cfg), "--once",
                          "--http-bind", "127.0.0.1:18080", "--shrink-guard", "1"]).start()
    assert once.proc.wait(30) == 0
    assert "web0.example.com" not in cfg.read_text() and "web5.example.com" in cfg.read_text()


def test_rotated_token_file_is_picked_up_without_a_restart(tmp_path, fake_api_tls):
    api = fake_api_tls
    populate(api)
    token = tmp_path / "token"
    token.write_text("first-token\n")
    api.set_tokens(["first-token"])
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none", token_file=str(token))
    cfg = tmp_path / "haproxy.cfg"
    with daemon(tmp_path, kubeconfig) as d:
        d.event("config.applied")
        mark = d.mark
        token.write_text("second-token\n")
        api.set_tokens(["second-token"])  # the old one is revoked at once
        api.set_endpoints("shop", "web1", ready=["10.0.1.9"])
        d.wait_for(lambda e: e.get("event") == "config.applied", after=mark, timeout=15)
        assert "10.0.1.9:8080" in cfg.read_text()
    assert "first-token" not in "".join(d.raw) and "second-token" not in "".join(d.raw)


def test_namespace_and_selector_filters(tmp_path, api):
    api.add_service("other", "elsewhere", [("http", 80, 8080)], labels={"tier": "web"})
    api.set_endpoints("elsewhere", "other", ready=["10.9.0.1"])
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none")
    out = LbsyncProcess(["--kubeconfig", kubeconfig, "--haproxy-config", str(tmp_path / "h.cfg"), "--once",
                         "--dry-run", "--namespaces", "elsewhere", "--selector", "tier=web",
                         "--http-bind", "127.0.0.1:18080"]).start()
    assert out.proc.wait(30) == 1
    text = "".join(out.raw)
    assert "elsewhere_other_80" in text and "web0.example.com" not in text
