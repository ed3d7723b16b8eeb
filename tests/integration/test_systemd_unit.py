"""systemd/: lbsync.service passes `systemd-analyze verify`, is sandboxed as documented,
and agrees with the example settings file and the haproxy.service drop-in.

`systemd-analyze verify` also checks that ExecStart='s binary exists, and
/usr/local/bin/lbsync does not on a test machine. So the unit is verified as a copy in
a temporary directory whose ExecStart= points at an existing binary (the lbsync on
PATH, else /bin/true); nothing else in the copy is changed. Warnings about other units
(the host's own) are ignored; any line about ours fails the test. PID 1 need not be
systemd: verify works on a plain container.
"""
import ctypes
import os
import platform
import re
import shutil
import subprocess
import sys

import pytest

from lbsync import settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEMD = os.path.join(ROOT, "systemd")
UNIT = os.path.join(SYSTEMD, "lbsync.service")
DROPIN = os.path.join(SYSTEMD, "haproxy-lbsync.conf")
EXAMPLE = os.path.join(SYSTEMD, "lbsync.yaml")
EXEC_START = "/usr/local/bin/lbsync --config /etc/lbsync/lbsync.yaml"

needs_analyze = pytest.mark.skipif(
    not shutil.which("systemd-analyze"),
    reason="systemd-analyze not installed (apt-get install systemd; CI installs it)")


def parse(path):
    """{section: [(key, value), ...]}: systemd syntax, repeated keys kept in order."""
    sections, current = {}, None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), [])
                continue
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def one(section, key):
    values = [v for k, v in section if k == key]
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


@pytest.fixture(scope="module")
def unit():
    return parse(UNIT)


def verify(path, cwd):
    return subprocess.run(["systemd-analyze", "verify", path], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER=""))


def about(stderr, *names):
    return [line for line in stderr.splitlines() if any(n in line for n in names)]


def unit_copy(tmp_path, extra=""):
    """lbsync.service with ExecStart= pointing at a binary that exists here."""
    binary = shutil.which("lbsync") or "/bin/true"
    with open(UNIT, encoding="utf-8") as f:
        text = f.read()
    assert text.count("\nExecStart=/usr/local/bin/lbsync ") == 1
    text = text.replace("\nExecStart=/usr/local/bin/lbsync ", f"\nExecStart={binary} ")
    text = text.replace("[Service]\n", "[Service]\n" + extra, 1)
    path = tmp_path / "lbsync.service"
    path.write_text(text)
    return str(path)


@needs_analyze
def test_systemd_analyze_verify_has_nothing_to_say_about_our_unit(tmp_path):
    path = unit_copy(tmp_path)
    r = verify(path, tmp_path)
    ours = about(r.stderr, "lbsync.service", str(tmp_path))
    assert r.returncode == 0 and not ours, r.stderr


@needs_analyze
def test_verify_would_catch_a_bad_directive(tmp_path):
    """The check above is not vacuous: a typo in the unit shows up on stderr."""
    path = unit_copy(tmp_path, extra="ProtectSytem=strict\n")
    assert about(verify(path, tmp_path).stderr, "lbsync.service"), "systemd-analyze ignored an unknown key"


@needs_analyze
def test_haproxy_drop_in_verifies_against_haproxy_service(tmp_path):
    """The drop-in, next to haproxy.service (the installed one, or a stand-in)."""
    installed = "/lib/systemd/system/haproxy.service"
    target = tmp_path / "haproxy.service"
    if os.path.exists(installed) and os.path.exists("/usr/sbin/haproxy"):
        shutil.copy(installed, target)
    else:
        target.write_text("[Unit]\nDescription=stand-in\n[Service]\nType=notify\n"
                          "Environment=\"EXTRAOPTS=-S /run/haproxy-master.sock\"\n"
                          "ExecStart=/bin/true $EXTRAOPTS\n")
    (tmp_path / "haproxy.service.d").mkdir()
    shutil.copy(DROPIN, tmp_path / "haproxy.service.d" / "lbsync.conf")
    r = verify(str(target), tmp_path)
    assert r.returncode == 0 and not about(r.stderr, "lbsync.conf", str(tmp_path)), r.stderr


def test_unit_is_a_notify_service_run_as_lbsync_that_restarts_on_failure(unit):
    s = unit["Service"]
    assert one(s, "Type") == "notify"
    assert one(s, "ExecStart") == EXEC_START
    assert one(s, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(s, "Restart") == "on-failure" and one(s, "RestartSec") == "5"
    assert one(s, "User") == "lbsync" and one(s, "Group") == "lbsync"
    assert one(s, "UMask") == "0027"
    u = unit["Unit"]
    assert set(one(u, "After").split()) == {"network-online.target", "haproxy.service"}
    assert one(u, "Wants") == "network-online.target"
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


SANDBOX = {
    "ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectHome": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "RestrictNamespaces": "yes",
    "LockPersonality": "yes", "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "", "AmbientCapabilities": "",
}


@pytest.mark.parametrize("key,value", sorted(SANDBOX.items()))
def test_unit_is_sandboxed(unit, key, value):
    assert one(unit["Service"], key) == value


def test_only_the_haproxy_config_directory_is_writable(unit):
    s = settings.load(config_file=EXAMPLE, env={})
    assert one(unit["Service"], "ReadWritePaths").split() == [os.path.dirname(s.haproxy_config)]


def test_memory_deny_write_execute_is_deliberately_off(unit):
    """It would be inherited by lbsync's `haproxy -c` (see the next test)."""
    assert not [k for k, _ in unit["Service"] if k == "MemoryDenyWriteExecute"]
    with open(UNIT, encoding="utf-8") as f:
        assert "PCRE2" in f.read()  # the reason is written down in the unit


def _mdwe_supported():
    """PR_SET_MDWE works here (Linux 6.3+); tried in a throw-away process, it cannot be undone."""
    if platform.system() != "Linux":
        return False
    probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


def _set_mdwe():
    ctypes.CDLL(None).prctl(65, 1, 0, 0, 0)  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy binary not installed")
@pytest.mark.skipif(not _mdwe_supported(), reason="kernel has no PR_SET_MDWE (Linux 6.3+)")
def test_haproxy_check_fails_under_memory_deny_write_execute(tmp_path):
    """Why the unit has no MemoryDenyWriteExecute=yes: with write+execute memory denied,
    haproxy's PCRE2 JIT cannot compile the path-prefix regexes and `haproxy -c` rejects
    every config lbsync renders. If this starts passing with the check succeeding, the
    option can be turned on."""
    if "PCRE2_JIT" not in subprocess.run(["haproxy", "-vv"], capture_output=True, text=True).stdout.replace("-PCRE2_JIT", ""):
        pytest.skip("this haproxy is built without PCRE2 JIT")
    cfg = tmp_path / "haproxy.cfg"
    from lbsync import cli
    assert cli.main(["--source", os.path.join(ROOT, "examples", "cluster.yaml"), "--haproxy-config", str(cfg),
                     "--http-bind", "127.0.0.1:18080", "--log-format", "json", "--once"]) == 0
    assert "replace-path" in cfg.read_text()
    r = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, preexec_fn=_set_mdwe)
    assert r.returncode != 0 and "jit compilation failed" in r.stdout + r.stderr


def test_example_settings_file_loads_and_matches_the_vm_setup():
    s = settings.load(config_file=EXAMPLE, env={})
    assert s.kubeconfig == "/etc/lbsync/kubeconfig" and s.source is None
    assert s.master_socket == "/run/haproxy-master.sock"
    assert s.runtime_socket == "/run/haproxy/admin.sock"
    assert s.haproxy_log == "/dev/log" and s.log_format == "json"
    assert s.metrics_bind == "127.0.0.1:9102" and s.tls_cert


def test_drop_in_gives_the_master_socket_to_group_lbsync():
    s = settings.load(config_file=EXAMPLE, env={})
    service = parse(DROPIN)["Service"]
    env = one(service, "Environment")
    m = re.fullmatch(r'"EXTRAOPTS=-S ([^,\s]+)((?:,[a-z-]+,[^,\s"]+)*)"', env)
    assert m, env
    assert m.group(1) == s.master_socket
    opts = m.group(2).split(",")[1:]
    assert dict(zip(opts[::2], opts[1::2])) == {"mode": "660", "group": "lbsync"}
    # and the Runtime API socket's group is rendered by lbsync itself
    assert s.runtime_socket_group == "lbsync"
    assert (s.haproxy_user, s.haproxy_group) == ("haproxy", "haproxy")
