"""Runtime API against a real HAProxy: move a disabled slot to a live backend, drain, maint."""
from __future__ import annotations

import pytest

from lbsync.exceptions import RuntimeApiError
from lbsync.haproxy.reload import MasterSocketReloader
from lbsync.haproxy.runtime import RuntimeApi, parse_servers_state
from tests.helpers.backends import Backend, free_port, hits
from tests.helpers.haproxy_proc import HAProxyProcess, haproxy_available, http_config

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]


@pytest.fixture
def env(tmp_path):
    """HAProxy with `s1` -> backend one (checked) and `s2` a disabled placeholder."""
    one, two = Backend("one").start(), Backend("two").start()
    cfg = tmp_path / "haproxy.cfg"
    proc = HAProxyProcess(str(cfg), str(tmp_path))
    port = free_port()
    cfg.write_text(http_config(port, [f"server s1 {one.address} check inter 200ms",
                                      "server s2 127.0.0.1:1 disabled"],
                               admin_socket=proc.admin_socket))
    try:
        proc.start()
        yield proc, RuntimeApi(proc.admin_socket), port, one, two
    finally:
        proc.stop()
        one.stop()
        two.stop()


def _by_name(api):
    return {row["name"]: row for row in api.servers("be")}


def test_initial_state(env):
    _, api, _, one, _ = env
    servers = _by_name(api)
    assert servers["s1"]["addr"] == "127.0.0.1" and servers["s1"]["port"] == one.port
    assert servers["s1"]["admin_state"] == "ready"
    assert servers["s2"]["admin_state"] == "maint"  # `disabled` in the config
    assert servers["s2"]["port"] == 1 and servers["s2"]["op_state"] == "down"


def test_fill_slot_then_drain_and_maint(env):
    _, api, port, one, two = env
    assert api.set_server_addr("be", "s2", "127.0.0.1", two.port)  # HAProxy's answer, for the log
    assert (_by_name(api)["s2"]["addr"], _by_name(api)["s2"]["port"]) == ("127.0.0.1", two.port)
    api.set_server_addr("be", "s2", "127.0.0.1", two.port)  # unchanged: no error either
    api.set_server_state("be", "s2", "ready")
    s2 = _by_name(api)["s2"]
    assert (s2["port"], s2["admin_state"]) == (two.port, "ready")
    assert hits(port, 10) == {"one": 5, "two": 5}

    api.set_server_state("be", "s1", "drain")
    assert _by_name(api)["s1"]["admin_state"] == "drain"
    assert hits(port, 6) == {"two": 6}
    api.set_server_state("be", "s1", "maint")
    assert _by_name(api)["s1"]["admin_state"] == "maint"
    assert hits(port, 6) == {"two": 6}
    api.set_server_state("be", "s1", "ready")
    assert set(hits(port, 6)) == {"one", "two"}


def test_ipv6_address(env):
    _, api, _, _, _ = env
    api.set_server_addr("be", "s2", "::1", 8443)
    s2 = _by_name(api)["s2"]
    assert (s2["addr"], s2["port"]) == ("::1", 8443)
    api.set_server_addr("be", "s2", "0:0:0:0:0:0:0:1")  # sent compressed, port unchanged
    s2 = _by_name(api)["s2"]
    assert (s2["addr"], s2["port"]) == ("::1", 8443)


@pytest.mark.parametrize("ip, port", [("127.0.0.1", None), ("127.0.0.1", 1)])
def test_unchanged_address_is_a_success(env, ip, port):
    """An address already set is worded differently per version (2.6 "no need to change",
    3.x "nothing changed"); either way the server holds it, so it is no refusal."""
    _, api, _, _, _ = env
    before = _by_name(api)["s2"]
    api.set_server_addr("be", "s2", ip, port)
    after = _by_name(api)["s2"]
    assert (after["addr"], after["port"], after["admin_state"]) == ("127.0.0.1", 1, "maint")
    assert after["srv_id"] == before["srv_id"]


def test_ipv6_backend_gets_traffic(env):
    """An IPv6 server address really carries requests, not just parses."""
    _, api, port, _, _ = env
    try:
        six = Backend("six", host="::1").start()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        api.set_server_addr("be", "s2", "::1", six.port)
        api.set_server_state("be", "s2", "ready")
        api.set_server_state("be", "s1", "maint")
        assert hits(port, 3) == {"six": 3}
    finally:
        six.stop()


@pytest.mark.parametrize("call, fragment", [
    (lambda api: api.set_server_state("be", "nosuch", "ready"), "No such server"),
    (lambda api: api.set_server_state("nobe", "s1", "ready"), "No such backend"),
    (lambda api: api.set_server_addr("be", "nosuch", "127.0.0.1", 80), "No such server"),
    (lambda api: api.servers("nobe"), "Can't find backend"),
    (lambda api: api.command("bogus command"), "Unknown command"),
])
def test_refusals_raise_with_command_and_answer(env, call, fragment):
    _, api, _, _, _ = env
    with pytest.raises(RuntimeApiError) as info:
        call(api)
    assert fragment in str(info.value) and "`" in str(info.value)


def test_bad_arguments_never_reach_haproxy(env):
    _, api, _, _, _ = env
    with pytest.raises(ValueError):
        api.set_server_state("be", "s1", "up")
    with pytest.raises(ValueError):
        api.set_server_addr("be", "s1", "example.com", 80)
    with pytest.raises(ValueError):
        api.set_server_addr("be", "s1; shutdown frontend fe", "127.0.0.1", 80)
    with pytest.raises(ValueError):
        api.set_server_addr("be", "s1", "127.0.0.1", 70000)


def test_operator_level_is_refused(tmp_path):
    """A socket without admin level answers 'Permission denied': that is an error too."""
    cfg = tmp_path / "haproxy.cfg"
    proc = HAProxyProcess(str(cfg), str(tmp_path))
    text = http_config(free_port(), ["server s1 127.0.0.1:1"], admin_socket=proc.admin_socket)
    cfg.write_text(text.replace("level admin", "level operator"))
    with proc:
        with pytest.raises(RuntimeApiError, match="Permission denied"):
            RuntimeApi(proc.admin_socket).set_server_state("be", "s1", "maint")


def test_missing_socket(tmp_path):
    with pytest.raises(RuntimeApiError, match="show info"):
        RuntimeApi(str(tmp_path / "none.sock"), timeout=0.2).show_info()


def test_show_info_and_wait_for_worker_after_reload(env):
    proc, api, _, _, _ = env
    info = api.show_info()
    assert int(info["Pid"]) in proc.worker_pids()
    result = MasterSocketReloader(proc.master_socket).reload("test")
    info = api.wait_for_worker(result.new_pids, timeout=5)
    assert int(info["Pid"]) in result.new_pids
    with pytest.raises(RuntimeApiError, match="no answer from worker"):
        api.wait_for_worker([1], timeout=0.2)


def test_parse_servers_state_rejects_garbage():
    with pytest.raises(ValueError):
        parse_servers_state("No such backend.\n")


def test_weight_changes_the_share_of_traffic_without_a_reload(env):
    _, api, port, one, two = env
    api.set_server_addr("be", "s2", "127.0.0.1", two.port)
    api.set_server_state("be", "s2", "ready")
    api.set_server_weight("be", "s1", 3)
    assert _by_name(api)["s1"]["srv_uweight"] == "3"
    assert hits(port, 8) == {"one": 6, "two": 2}
    with pytest.raises(ValueError):
        api.set_server_weight("be", "s1", 257)


def test_weight_refused_by_a_static_algorithm_raises(tmp_path):
    one = Backend("one").start()
    cfg = tmp_path / "haproxy.cfg"
    proc = HAProxyProcess(str(cfg), str(tmp_path))
    cfg.write_text(http_config(free_port(), [f"server s1 {one.address}"], admin_socket=proc.admin_socket,
                               backend_extra="    balance source\n"))
    try:
        proc.start()
        with pytest.raises(RuntimeApiError, match="weight"):
            RuntimeApi(proc.admin_socket).set_server_weight("be", "s1", 3)
    finally:
        proc.stop()
        one.stop()
