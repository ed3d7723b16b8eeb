"""The suite's own network rule: a live HAProxy never gets a server outside loopback."""
import pytest

from tests.helpers.haproxy_proc import HAProxyProcess
from tests.helpers.loopback import outside


def test_outside_finds_every_non_loopback_server_and_check_address():
    cfg = ("backend b\n    server s1 127.0.0.2:80 check\n    server s2 [::1]:80\n"
           "    server s3 10.1.2.3:8080 check\n    server s4 [2001:db8::1]:443\n"
           "    server s5 127.1.2.3:80 check addr 192.0.2.7 port 9\n    server s6 ipv4@127.0.0.9:80\n"
           "    server s7 db.example.com:5432\n    server s8 localhost:80\n    server s9 unix@/run/x.sock\n"
           "    default-server inter 2s\n")
    assert outside(cfg) == ["10.1.2.3", "192.0.2.7", "2001:db8::1", "db.example.com"]
    assert outside("backend b\n    server s1 127.0.0.1:1 disabled\n") == []


def test_haproxy_process_refuses_to_start_with_servers_off_the_machine(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("defaults\n    mode http\nbackend b\n    server s1 10.0.0.1:80 check\n")
    proc = HAProxyProcess(str(cfg), str(tmp_path))
    with pytest.raises(AssertionError, match="outside loopback.*10.0.0.1"):
        proc.start()
    assert proc.proc is None  # nothing was run
