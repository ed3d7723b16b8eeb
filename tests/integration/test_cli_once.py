"""`lbsync --once [--dry-run]` against a cluster file: exit codes, diffs, atomic writes, checks."""
import os
import shutil
import stat
import subprocess
import sys

import pytest

from lbsync import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "cluster.yaml")
needs_haproxy = pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy binary not installed")


def run(*args):
    return cli.main(["--source", EXAMPLE, "--log-format", "json", "--http-bind", "127.0.0.1:18080", *args])


def test_dry_run_against_missing_live_file_prints_a_diff_from_empty_and_exits_1(tmp_path, capsys):
    live = tmp_path / "haproxy.cfg"
    assert run("--haproxy-config", str(live), "--once", "--dry-run") == 1
    out = capsys.readouterr().out
    assert out.startswith(f"--- {live}\n+++ {live} (new)\n@@ -0,0 +1,")
    assert "+backend mgt-gateway.am.wso2.com\n" in out and "+backend wso2_wso2am_7611\n" in out
    # the example's NodePort Service (lb.backend-mode: nodeport) is served by its two nodes
    assert "+    server s1 10.1.0.11:30080\n+    server s2 10.1.0.12:30080\n" in out
    assert "+    default-server check inter 2000ms fall 2 rise 1 port 10256\n" in out
    assert not live.exists()


@needs_haproxy
def test_once_writes_then_dry_run_sees_no_change_and_exits_0(tmp_path, capsys):
    live = tmp_path / "haproxy.cfg"
    assert run("--haproxy-config", str(live), "--once") == 0
    first = live.read_text()
    mtime = live.stat().st_mtime_ns
    capsys.readouterr()
    assert run("--haproxy-config", str(live), "--once", "--dry-run") == 0
    assert capsys.readouterr().out == ""
    assert run("--haproxy-config", str(live), "--once") == 0
    assert live.stat().st_mtime_ns == mtime and live.read_text() == first  # unchanged: not rewritten


@needs_haproxy
def test_once_keeps_one_backup_and_the_file_mode(tmp_path):
    live = tmp_path / "haproxy.cfg"
    live.write_text("# old config\n")
    os.chmod(live, 0o640)
    assert run("--haproxy-config", str(live), "--once") == 0
    assert (tmp_path / "haproxy.cfg.bak").read_text() == "# old config\n"
    assert stat.S_IMODE(live.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg", "haproxy.cfg.bak"]


@needs_haproxy
def test_config_rejected_by_haproxy_never_goes_live(tmp_path, capsys):
    live = tmp_path / "haproxy.cfg"
    live.write_text("# the last good config\n")
    template = tmp_path / "bad.j2"
    template.write_text("global\n    this-is-not-a-keyword 1\n")
    code = run("--haproxy-config", str(live), "--once", "--template", str(template))
    assert code == 2
    err = capsys.readouterr().err
    assert "this-is-not-a-keyword" in err  # HAProxy's own message reaches the user
    assert live.read_text() == "# the last good config\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.j2", "haproxy.cfg"]


@pytest.mark.parametrize("args, message", [
    (["--http-bind", "nonsense"], "http_bind"),
    (["--check-interval", "5"], "check_interval"),
    (["--publish", "some"], "publish"),
    (["--source", "/nonexistent/cluster.yaml"], "/nonexistent/cluster.yaml"),
])
def test_bad_input_is_one_clear_error_line_and_exit_2(tmp_path, capsys, args, message):
    assert run("--haproxy-config", str(tmp_path / "h.cfg"), "--once", "--dry-run", *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_malformed_source_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("items: [unclosed\n")
    assert cli.main(["--source", str(bad), "--haproxy-config", str(tmp_path / "h.cfg"), "--once",
                     "--dry-run"]) == 2
    assert str(bad) in capsys.readouterr().err


def test_settings_precedence_flag_over_env_over_file(tmp_path, capsys):
    conf = tmp_path / "lbsync.yaml"
    conf.write_text(f"source: {EXAMPLE}\nhaproxy_config: {tmp_path / 'h.cfg'}\nhttp_bind: 127.0.0.1:1001\n"
                    "stats_bind: 127.0.0.1:1002\nhttps_bind: 127.0.0.1:1003\n")
    env = dict(os.environ, LBSYNC_STATS_BIND="127.0.0.1:2002", LBSYNC_HTTPS_BIND="127.0.0.1:2003")
    out = subprocess.run([sys.executable, "-m", "lbsync", "--config", str(conf), "--once", "--dry-run",
                          "--https-bind", "127.0.0.1:3003", "--tls-cert", "/x.pem"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 1, out.stderr
    assert "+    bind 127.0.0.1:1001" in out.stdout      # file
    assert "+    bind 127.0.0.1:2002" in out.stdout      # env beats file
    assert "+    bind 127.0.0.1:3003 ssl" in out.stdout  # flag beats env


def test_unknown_env_setting_is_an_error(tmp_path, capsys):
    env_backup = os.environ.get("LBSYNC_HTTP_BNID")
    os.environ["LBSYNC_HTTP_BNID"] = "x"
    try:
        assert run("--haproxy-config", str(tmp_path / "h.cfg"), "--once", "--dry-run") == 2
    finally:
        os.environ.pop("LBSYNC_HTTP_BNID")
    assert "LBSYNC_HTTP_BNID" in capsys.readouterr().err
    assert env_backup is None


def test_a_one_shot_run_in_this_process_gives_the_garbage_collector_back(tmp_path, capsys):
    import gc
    assert gc.isenabled()
    assert run("--haproxy-config", str(tmp_path / "haproxy.cfg"), "--once", "--dry-run") == 1
    assert gc.isenabled()  # off only while the pass ran (lbsync.cli._one_shot)
    gc.disable()
    try:
        run("--haproxy-config", str(tmp_path / "haproxy.cfg"), "--once", "--dry-run")
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()
