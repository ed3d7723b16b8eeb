"""One sync pass: what is a runtime update, what needs a reload, and what is skipped altogether."""
import os
import shutil

import pytest
import yaml

from lbsync import haproxy, settings as settings_mod, sync
from lbsync.haproxy.reload import ReloadResult
from tests.cluster import slice_, svc

needs_haproxy = pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy binary not installed")


class RecordingReloader:
    """A Reloader (our own protocol) that records calls instead of signalling a process."""

    def __init__(self):
        self.reasons = []

    def reload(self, reason):
        self.reasons.append(reason)
        return ReloadResult(ok=True, duration_s=0.0)


def write_cluster(path, pods, *, services=("web",)):
    objs = []
    for name in services:
        objs += [svc(name, "shop", annotations={"lb.host": f"{name}.example.com"}),
                 slice_(name, "shop", ready=pods)]
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objs}))


@pytest.fixture
def env(tmp_path):
    cluster = tmp_path / "cluster.yaml"
    write_cluster(cluster, ["10.0.0.1", "10.0.0.2"])
    s = settings_mod.Settings(source=str(cluster), haproxy_config=str(tmp_path / "haproxy.cfg"),
                              http_bind="127.0.0.1:18080", master_socket=str(tmp_path / "master.sock"))
    (tmp_path / "master.sock").write_text("")  # "HAProxy is running" for the reloader check
    return tmp_path, cluster, s


def make(s, *, runtime=None):
    reloader = RecordingReloader()
    return sync.Syncer(s, reloader=reloader, runtime=runtime), reloader


@needs_haproxy
def test_unchanged_cluster_costs_no_render_and_no_write(env):
    tmp, cluster, s = env
    syncer, reloader = make(s)
    assert syncer.run().written
    mtime = os.stat(s.haproxy_config).st_mtime_ns
    again = syncer.run()
    assert again.skipped_render and not again.written and not again.reloaded
    assert os.stat(s.haproxy_config).st_mtime_ns == mtime
    assert len(reloader.reasons) == 1


@needs_haproxy
def test_endpoint_change_is_not_structural_but_a_new_service_is(env):
    tmp, cluster, s = env
    syncer, _ = make(s)
    syncer.run()
    write_cluster(cluster, ["10.0.0.1", "10.0.0.3"])
    assert not syncer.plan().structural
    write_cluster(cluster, ["10.0.0.1"], services=("web", "api"))
    plan = syncer.plan()
    assert plan.structural and "backends added: api.example.com" in plan.why()


@needs_haproxy
def test_refused_runtime_update_falls_back_to_one_reload(env):
    tmp, cluster, s = env
    api = haproxy.RuntimeApi(str(tmp / "no-such-admin.sock"), timeout=0.2)  # nobody answers
    syncer, reloader = make(s, runtime=api)
    syncer.run()
    write_cluster(cluster, ["10.0.0.1", "10.0.0.3"])
    result = syncer.run()
    assert result.runtime_fallbacks == 1 and result.reloaded and result.runtime_updates == 0
    assert "10.0.0.3:8080" in open(s.haproxy_config).read()


@needs_haproxy
def test_reload_held_back_by_the_rate_limit_happens_on_a_later_pass(env):
    tmp, cluster, s = env
    syncer, reloader = make(s)
    syncer.run()
    write_cluster(cluster, ["10.0.0.1"], services=("web", "api"))
    deferred = syncer.run(allow_reload=False)
    assert deferred.reason.startswith("deferred") and not deferred.written
    assert "api.example.com" not in open(s.haproxy_config).read()
    later = syncer.run(allow_reload=True)
    assert later.written and later.reloaded and len(reloader.reasons) == 2


@needs_haproxy
def test_no_reload_when_haproxy_is_not_running_yet(env):
    tmp, cluster, s = env
    os.unlink(tmp / "master.sock")  # e.g. an init container rendering the first config
    syncer, reloader = make(s)
    result = syncer.run()
    assert result.written and not result.reloaded and reloader.reasons == []
