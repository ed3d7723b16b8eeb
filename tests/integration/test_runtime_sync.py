"""A sync pass against a real HAProxy: an endpoint change goes over the Runtime API, no reload.

HAProxy words `set server ... addr` differently per version when the server already holds
the address (2.6 "no need to change the addr", 3.x "nothing changed"). That must be a
success, not a refusal that falls back to a reload, on every version we test.
"""
from __future__ import annotations

import dataclasses
import time

import pytest
import yaml

from lbsync import settings as settings_mod, sync
from tests.cluster import slice_, svc
from tests.helpers.backends import free_port
from tests.helpers.haproxy_proc import HAProxyProcess, haproxy_available

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]

PODS = ["127.0.0.2", "127.0.0.3"]  # loopback: health checks are traffic
NEW = "127.0.0.4"


def write_cluster(path, pods):
    objs = [svc("web", "shop", annotations={"lb.host": "web.example.com"}), slice_("web", "shop", ready=pods)]
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objs}))


@pytest.fixture
def running(tmp_path):
    """A Syncer whose first config a real master-worker HAProxy runs."""
    cluster, cfg = tmp_path / "cluster.yaml", str(tmp_path / "haproxy.cfg")
    proc = HAProxyProcess(cfg, str(tmp_path))
    write_cluster(cluster, PODS)
    s = settings_mod.Settings(source=str(cluster), haproxy_config=cfg, deny_networks=(),
                              http_bind=f"127.0.0.1:{free_port()}", stats_bind="", haproxy_log="",
                              runtime_socket=proc.admin_socket, master_socket=proc.master_socket)
    syncer = sync.Syncer(s)
    assert syncer.run().written  # HAProxy not running yet: written, nothing to reload
    proc.start()
    try:
        yield syncer, proc, cluster
    finally:
        proc.stop()


def servers(proc):
    """`show servers state` rows of the only backend, parsed here (not with lbsync's parser)."""
    lines = [line for line in proc.admin_command("show servers state").splitlines() if line.strip()]
    columns = lines[1].lstrip("#").split()
    rows = [dict(zip(columns, line.split())) for line in lines[2:] if not line.startswith("#")]
    return {row["srv_name"]: row for row in rows}


def held(proc, name, want, timeout=2.0):
    """The server's address and port, waiting up to `timeout` for `want`: 3.x applies
    `set server addr` just after answering, so a read straight after it may see the old one."""
    deadline = time.monotonic() + timeout
    while True:
        row = servers(proc)[name]
        got = (row["srv_addr"], row["srv_port"])
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def ready(row):
    """No maintenance or drain bit left but 0x04, the config's own `disabled` (management.txt)."""
    return int(row["srv_admin_state"]) & ~0x04 == 0


def reload_count(proc):
    return int(proc.master_command("show proc").splitlines()[1].split()[2])


def test_new_pod_goes_in_over_the_runtime_api(running):
    syncer, proc, cluster = running
    workers, reloads = proc.worker_pids(), reload_count(proc)
    write_cluster(cluster, PODS + [NEW])
    result = syncer.run()
    assert (result.runtime_updates, result.runtime_fallbacks, result.reloaded) == (1, 0, False)
    assert (proc.worker_pids(), reload_count(proc)) == (workers, reloads)
    s3 = servers(proc)["s3"]
    assert (s3["srv_addr"], s3["srv_port"], ready(s3)) == (NEW, "8080", True)


def test_address_already_held_causes_no_reload(running):
    """The slot already holds the new Pod's address (say, an earlier update was cut short after
    its `set server addr`): HAProxy answers "nothing changed"/"no need to change", no refusal."""
    syncer, proc, cluster = running
    proc.admin_command(f"set server web.example.com/s3 addr {NEW} port 8080")
    assert held(proc, "s3", (NEW, "8080")) == (NEW, "8080")
    workers, reloads = proc.worker_pids(), reload_count(proc)
    write_cluster(cluster, PODS + [NEW])
    result = syncer.run()
    assert f"server s3 {NEW}:8080" in open(syncer.path).read()
    assert (result.runtime_updates, result.runtime_fallbacks, result.reloaded) == (1, 0, False)
    assert (proc.worker_pids(), reload_count(proc)) == (workers, reloads)
    assert ready(servers(proc)["s3"])


def test_a_pod_move_reaches_haproxy_before_the_text_is_rendered(running):
    """Only Pods moved: the plan says so from the model (`quick`), and HAProxy holds the new
    Pod by the time the config text is rendered (the render waits, not the traffic)."""
    syncer, proc, cluster = running
    write_cluster(cluster, PODS + [NEW])
    plan = syncer.plan()
    assert plan.quick and "text" not in vars(plan)  # decided without rendering
    seen_at_render = []
    render = syncer.cache.render

    def observed(*args, **kw):
        seen_at_render.append(held(proc, "s3", (NEW, "8080"), timeout=0.5))
        return render(*args, **kw)

    syncer.cache.render = observed
    result = syncer.run_plan(plan)
    assert seen_at_render == [(NEW, "8080")]
    assert (result.runtime_updates, result.reloaded) == (1, False)
    assert f"server s3 {NEW}:8080" in open(syncer.path).read()


def test_a_template_showing_more_than_server_lines_is_reloaded(running, tmp_path):
    """A template of one's own that prints something of the servers outside their lines (here a
    count): the Runtime API update is not the whole change, so HAProxy is reloaded onto the file."""
    syncer, proc, cluster = running
    bundled = open(syncer.renderer.template_path).read()
    mine = tmp_path / "mine.cfg.j2"
    mine.write_text(bundled + "# servers:{% for b in backends %} {{ b.servers|length }}{% endfor %}\n")
    syncer = sync.Syncer(dataclasses.replace(syncer.settings, template=str(mine)))
    assert syncer.run().reloaded  # onto the template's first config
    write_cluster(cluster, PODS + [NEW])
    plan = syncer.plan()
    assert plan.quick  # the model cannot tell...
    result = syncer.run_plan(plan)
    assert (result.runtime_fallbacks, result.reloaded) == (1, True)  # ...the text can
    assert "# servers: 3\n" in open(syncer.path).read()
