"""Atomic replacement of the live config (lbsync.haproxy.files), with `haproxy -c` as the check."""
from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from tests.helpers.fs import tmpfs

from lbsync.exceptions import ApplyError, HAProxyCheckFailed
from lbsync.haproxy import files
from lbsync.haproxy.check import check_config
from tests.helpers.haproxy_proc import HAPROXY, haproxy_available, http_config

pytestmark = pytest.mark.integration

GOOD = http_config(8080, ["server s1 127.0.0.1:9000"])
GOOD2 = http_config(8080, ["server s1 127.0.0.1:9001"])
BAD = http_config(8080, ["server s1 127.0.0.1:9000", "bogus_keyword on"])
needs_haproxy = pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")


def _check(path):
    return check_config(path, binary=HAPROXY)


def _temps(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


def test_read_missing_is_empty(tmp_path):
    assert files.read(str(tmp_path / "none.cfg")) == ""


@needs_haproxy
def test_first_write_creates_file_0644_without_backup(tmp_path):
    live = tmp_path / "haproxy.cfg"
    assert files.replace(str(live), GOOD, check=_check) is True
    assert live.read_text() == GOOD
    assert stat.S_IMODE(live.stat().st_mode) == 0o644
    assert not (tmp_path / "haproxy.cfg.bak").exists()
    assert _temps(tmp_path) == []


def test_unchanged_content_is_not_written(tmp_path):
    live = tmp_path / "haproxy.cfg"
    live.write_text(GOOD)
    os.utime(live, (1_000_000, 1_000_000))
    before = live.stat()
    called = []
    assert files.replace(str(live), GOOD, check=called.append) is False
    after = live.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert called == [] and _temps(tmp_path) == []
    assert not (tmp_path / "haproxy.cfg.bak").exists()


@needs_haproxy
def test_change_keeps_one_backup_and_preserves_mode(tmp_path):
    live = tmp_path / "haproxy.cfg"
    live.write_text(GOOD)
    live.chmod(0o640)
    os.chown(live, os.getuid(), os.getgid())
    assert files.replace(str(live), GOOD2, check=_check) is True
    assert live.read_text() == GOOD2
    assert stat.S_IMODE(live.stat().st_mode) == 0o640
    assert (tmp_path / "haproxy.cfg.bak").read_text() == GOOD
    assert files.replace(str(live), GOOD, check=_check) is True
    assert (tmp_path / "haproxy.cfg.bak").read_text() == GOOD2
    assert sorted(os.listdir(tmp_path)) == ["haproxy.cfg", "haproxy.cfg.bak"]


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another owner needs root")
def test_owner_is_preserved(tmp_path):
    live = tmp_path / "haproxy.cfg"
    live.write_text(GOOD)
    os.chown(live, 65534, 65534)
    files.replace(str(live), GOOD2)
    assert (live.stat().st_uid, live.stat().st_gid) == (65534, 65534)


@needs_haproxy
def test_rejected_config_leaves_live_file_and_no_temp(tmp_path):
    live = tmp_path / "haproxy.cfg"
    live.write_text(GOOD)
    inode = live.stat().st_ino
    with pytest.raises(HAProxyCheckFailed, match="bogus_keyword") as info:
        files.replace(str(live), BAD, check=_check)
    assert ".lbsync-" in str(info.value)  # the staged file is what was checked
    assert live.read_text() == GOOD and live.stat().st_ino == inode
    assert _temps(tmp_path) == [] and not (tmp_path / "haproxy.cfg.bak").exists()


def test_check_sees_the_staged_content(tmp_path):
    live = tmp_path / "haproxy.cfg"
    seen = []
    files.replace(str(live), GOOD, check=lambda p: seen.append((p, open(p).read())))
    (staged, text), = seen
    assert os.path.dirname(staged) == str(tmp_path) and staged != str(live)
    assert text == GOOD and not os.path.exists(staged)


def test_symlinked_config_stays_a_symlink(tmp_path):
    real = tmp_path / "real.cfg"
    real.write_text(GOOD)
    link = tmp_path / "haproxy.cfg"
    link.symlink_to(real)
    assert files.replace(str(link), GOOD2) is True
    assert link.is_symlink() and real.read_text() == GOOD2


def test_stale_temp_files_are_cleaned_on_next_stage(tmp_path):
    live = tmp_path / "haproxy.cfg"
    live.write_text(GOOD)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [f".haproxy.cfg.lbsync-{dead.pid}-abc.tmp", ".haproxy.cfg.lbsync-old.tmp",
             f".haproxy.cfg.lbsync-{os.getpid()}-xyz.tmp", f"haproxy.cfg.bak.lbsync-{dead.pid}.tmp"]
    alive = f".haproxy.cfg.lbsync-{os.getppid()}-live.tmp"  # another live process: keep
    unrelated = ".other.cfg.lbsync-1-x.tmp"
    for name in stale + [alive, unrelated]:
        (tmp_path / name).write_text("partial")
    staged = files.stage(str(live), GOOD2)
    try:
        assert _temps(tmp_path) == sorted([alive, unrelated, os.path.basename(staged)])
    finally:
        files.discard(staged)
    assert not os.path.exists(staged)


def test_commit_and_discard_directly(tmp_path):
    live = tmp_path / "haproxy.cfg"
    staged = files.stage(str(live), GOOD)
    assert os.path.basename(staged).startswith(".haproxy.cfg.lbsync-")
    files.commit(staged, str(live), backup=False)
    assert live.read_text() == GOOD and not os.path.exists(staged)
    staged = files.stage(str(live), GOOD2)
    files.discard(staged)
    files.discard(staged)  # twice is fine
    assert live.read_text() == GOOD and _temps(tmp_path) == []


def test_missing_directory_is_apply_error(tmp_path):
    with pytest.raises(ApplyError, match=r"no-dir.*No such file or directory"):
        files.replace(str(tmp_path / "no-dir" / "haproxy.cfg"), GOOD)


def test_read_only_filesystem_is_apply_error(tmp_path):
    with tmpfs(tmp_path / "mnt") as mnt:
        live = mnt / "haproxy.cfg"
        live.write_text(GOOD)
        remount = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True)
        if remount.returncode != 0:
            pytest.skip("cannot remount the tmpfs read-only")
        with pytest.raises(ApplyError) as info:
            files.replace(str(live), GOOD2)
        assert str(live) in str(info.value) and "Read-only file system" in str(info.value)
        assert live.read_text() == GOOD


def test_disk_full_is_apply_error_and_leaves_nothing(tmp_path):
    with tmpfs(tmp_path / "mnt", size="64k") as mnt:
        live = mnt / "haproxy.cfg"
        live.write_text(GOOD)
        huge = GOOD + "# padding\n" * 20000  # ~200 KiB > 64 KiB
        with pytest.raises(ApplyError) as info:
            files.replace(str(live), huge)
        assert str(live) in str(info.value) and "No space left on device" in str(info.value)
        assert live.read_text() == GOOD and _temps(mnt) == []


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to drop to another user")
def test_permission_denied_is_apply_error():
    """As root, DAC never says no: run the replace as `nobody` in a child process."""
    directory = tempfile.mkdtemp(prefix="lbsync-eacces-")  # pytest's tmp dirs are 0700
    try:
        _replace_as_nobody(pathlib.Path(directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _replace_as_nobody(directory):
    directory.chmod(0o755)
    live = directory / "haproxy.cfg"
    live.write_text(GOOD)
    code = ("import sys\nfrom lbsync.exceptions import ApplyError\nfrom lbsync.haproxy import files\n"
            "try:\n    files.replace(sys.argv[1], 'x')\nexcept ApplyError as e:\n    print(e)\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = _run_as_nobody(code, str(live), env={**os.environ, "PYTHONPATH": root})
    if "ModuleNotFoundError" in out.stderr:
        pytest.skip(f"nobody cannot import lbsync from {root}")
    assert "Permission denied" in out.stdout and str(live) in out.stdout, out.stderr
    assert live.read_text() == GOOD


def _run_as_nobody(code, *args, env):
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            return subprocess.run([python, "-c", code, *args], capture_output=True, text=True,
                                  env=env, cwd="/", user=65534, group=65534, extra_groups=[],
                                  timeout=30)
        except (PermissionError, FileNotFoundError):
            continue
    pytest.skip("no Python interpreter that `nobody` may run")
