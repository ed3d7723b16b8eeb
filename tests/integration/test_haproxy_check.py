"""`haproxy -c` through lbsync.haproxy.check, against the real binary."""
from __future__ import annotations

import os
import stat

import pytest

from lbsync import haproxy
from lbsync.exceptions import HAProxyCheckFailed, HAProxyError, HAProxyNotFound
from lbsync.haproxy.check import check_config, version
from tests.helpers.haproxy_proc import HAPROXY, haproxy_available, http_config

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]


def _write(path, text):
    path.write_text(text)
    return str(path)


def _script(path, body):
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_valid_config_has_no_warnings(tmp_path):
    cfg = _write(tmp_path / "ok.cfg", http_config(8080, ["server s1 127.0.0.1:9000"]))
    assert check_config(cfg, binary=HAPROXY) == ""


def test_warnings_are_returned(tmp_path):
    text = http_config(8080, ["server s1 127.0.0.1:9000"]).replace("    timeout server 10s\n", "")
    warnings = check_config(_write(tmp_path / "warn.cfg", text), binary=HAPROXY)
    assert warnings.startswith("[WARNING]")
    assert "missing timeouts for backend 'be'" in warnings
    assert "   | " in warnings  # continuation lines kept
    assert "[NOTICE]" not in warnings


def test_rejected_config_carries_alerts(tmp_path):
    text = http_config(8080, ["server s1 127.0.0.1:9000", "bogus_keyword on"])
    cfg = _write(tmp_path / "bad.cfg", text)
    with pytest.raises(HAProxyCheckFailed) as info:
        check_config(cfg, binary=HAPROXY)
    err = info.value
    assert "unknown keyword 'bogus_keyword'" in str(err)
    assert cfg in str(err)
    assert err.alerts and all(line.startswith("[ALERT]") for line in err.alerts)
    assert "Fatal errors found" in err.output
    # the specific alert leads the message, before HAProxy's generic summaries
    assert str(err).split(": ", 1)[1].startswith("config : parsing [")


def test_many_alerts_are_capped_in_message(tmp_path):
    servers = ["server s1 127.0.0.1:9000"] + [f"bogus{i} x" for i in range(6)]
    cfg = _write(tmp_path / "bad.cfg", http_config(8080, servers))
    with pytest.raises(HAProxyCheckFailed) as info:
        check_config(cfg, binary=HAPROXY)
    assert len(info.value.alerts) >= 6
    assert "more)" in str(info.value)
    assert "bogus5" not in str(info.value)


def test_missing_file_is_a_check_failure(tmp_path):
    with pytest.raises(HAProxyCheckFailed) as info:
        check_config(str(tmp_path / "nope.cfg"), binary=HAPROXY)
    assert info.value.alerts


def test_missing_binary(tmp_path):
    with pytest.raises(HAProxyNotFound):
        check_config(str(tmp_path / "x.cfg"), binary=str(tmp_path / "no-haproxy"))
    with pytest.raises(HAProxyNotFound):
        version(str(tmp_path / "no-haproxy"))


def test_check_timeout(tmp_path):
    slow = _script(tmp_path / "slow-haproxy", "sleep 5")
    with pytest.raises(HAProxyCheckFailed, match="timed out"):
        check_config(str(tmp_path / "x.cfg"), binary=slow, timeout=0.3)


def test_failure_without_alert_lines_shows_output_tail(tmp_path):
    odd = _script(tmp_path / "odd-haproxy", "echo something broke; exit 3")
    with pytest.raises(HAProxyCheckFailed, match="exit 3.*something broke") as info:
        check_config(str(tmp_path / "x.cfg"), binary=odd)
    assert info.value.alerts == []


def test_version_of_real_binary():
    assert version(HAPROXY) >= (2, 4, 0)


@pytest.mark.parametrize("banner, expected", [
    ("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/", (2, 6, 12)),
    ("HAProxy version 2.9-dev3-abc 2023/08/01", (2, 9, 0)),
    ("HAProxy version 3.0.5-1 2024/09/19", (3, 0, 5)),
    ("HA-Proxy version 1.8.19 2019/02/11", (1, 8, 19)),
])
def test_version_parsing(tmp_path, banner, expected):
    fake = _script(tmp_path / "fake-haproxy", f"echo '{banner}'")
    assert version(fake) == expected


def test_version_garbage(tmp_path):
    fake = _script(tmp_path / "fake-haproxy", "echo hello")
    with pytest.raises(HAProxyError, match="cannot read the version"):
        version(fake)


def test_version_and_build_options_ask_the_binary_once_until_it_changes(tmp_path):
    """`haproxy -vv` serves both questions, once per binary file: a new binary is asked again."""
    calls = tmp_path / "calls"
    fake = tmp_path / "haproxy"
    fake.write_text("#!/bin/sh\necho \"$@\" >> %s\n"
                    "echo 'HAProxy version 2.8.5-1 2023/12/01 - https://haproxy.org/'\n"
                    "echo 'Available services : prometheus-exporter'\n" % calls)
    fake.chmod(0o755)
    assert haproxy.version(str(fake)) == (2, 8, 5)
    assert haproxy.has_prometheus_exporter(str(fake))
    assert calls.read_text() == "-vv\n"
    fake.write_text(fake.read_text().replace("2.8.5-1", "3.0.11-1").replace("prometheus-exporter", ""))
    os.utime(fake, ns=(0, 10**18))  # a new binary in place: another modification time
    assert haproxy.version(str(fake)) == (3, 0, 11)
    assert not haproxy.has_prometheus_exporter(str(fake))
    assert calls.read_text() == "-vv\n-vv\n"
