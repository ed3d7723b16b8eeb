"""A sync pass against a real HAProxy: an endpoint change goes over the Runtime API, no reload.

HAProxy words `set server ... addr` differently per version when the server already holds
the address (2.6 "no need to change the addr", 3.x "nothing changed"). That must be a
success, not a refusal that falls back to a reload, on every version we test.
"""
from __future__ import annotations

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
