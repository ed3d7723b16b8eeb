"""docs/getting-started.md, part 1, done the way a new user does it: the doc is the test.

The shell commands are read from the doc's fenced ```sh blocks marked
`<!-- test: example -->` (lbsync only) and `<!-- test: example haproxy -->` (these also
start HAProxy and use curl), in the order they appear, and run as one script. The
expected output is read from the blocks marked `<!-- test: output -->` /
`<!-- test: output haproxy -->`: every line there (except `...`) must appear in what the
commands really printed. So a change to the doc's commands is a change to this test.

What is adapted, and only this:
- `lbsync` is a two-line wrapper around `sys.executable -m lbsync` (this checkout, not
  an installed copy), first on PATH;
- the commands run in a temporary directory holding a copy of `examples/`, and every
  `/tmp/` in the commands and in the copied `examples/lbsync.yaml` becomes that
  directory, so nothing outside it is touched;
- `sleep 10` (waiting for health checks to give up on the example's made-up Pod
  addresses) becomes `sleep 0`: in the test's private network namespace those addresses
  are unreachable at once.
The HAProxy part runs in a private network namespace (`unshare -rn`), so its ports
cannot clash with anything on the machine and the health checks of the example's
10.2.x.x Pods never leave the namespace. It is skipped when haproxy, curl or openssl is
missing or no namespace can be made; the lbsync-only part always runs.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "getting-started.md")
_BLOCK = re.compile(r"<!-- test: (example|output)( haproxy)? -->\s*\n```[^\n]*\n(.*?)\n```", re.DOTALL)
# Written only for HAProxy 2.6+ (haproxy_version: auto asks the haproxy binary; without
# one, lbsync writes for 2.4): expected only when haproxy is installed.
_NEEDS_HAPROXY_26 = ("option idle-close-on-response", "# during a reload, idle keep-alive",
                     "# closed under the client")
_VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z"), "<time>"),
    (re.compile(r"duration_s=[0-9.e-]+"), "duration_s=<n>"),
    (re.compile(r"new_pids=\[[0-9, ]*\]"), "new_pids=[<pid>]"),
    (re.compile(r"\(\d+\)"), "(<pid>)"),
]


def blocks(kind, haproxy):
    """The marked blocks of one kind, in doc order; haproxy=None: with and without."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    return [m.group(3) for m in _BLOCK.finditer(text)
            if m.group(1) == kind and (haproxy is None or bool(m.group(2)) == haproxy)]


def normalize(line):
    line = line.rstrip()
    for pattern, repl in _VOLATILE:
        line = pattern.sub(repl, line)
    return line


def expected_lines(haproxy):
    lines = []
    for block in blocks("output", haproxy):
        lines += [normalize(line) for line in block.splitlines() if line.strip() not in ("", "...")]
    return lines


def prepare(tmp):
    """The working directory: examples/ (with /tmp/ re-pointed) and the `lbsync` wrapper."""
    shutil.copytree(os.path.join(ROOT, "examples"), os.path.join(tmp, "examples"))
    settings = os.path.join(tmp, "examples", "lbsync.yaml")
    with open(settings, encoding="utf-8") as f:
        text = f.read()
    with open(settings, "w", encoding="utf-8") as f:
        f.write(text.replace("/tmp/", tmp + "/"))
    os.mkdir(os.path.join(tmp, "bin"))
    wrapper = os.path.join(tmp, "bin", "lbsync")
    with open(wrapper, "w", encoding="utf-8") as f:
        f.write(f'#!/bin/sh\nexec "{sys.executable}" -m lbsync "$@"\n')
    os.chmod(wrapper, 0o755)


def script(haproxy, tmp):
    body = "\n".join(blocks("example", None if haproxy else False))
    body = re.sub(r"^sleep 10$", "sleep 0", body.replace("/tmp/", tmp + "/"), flags=re.MULTILINE)
    # background jobs (the daemon) never outlive the script, even when a step fails
    return "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + body + "\n"


def run(command, tmp, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBSYNC_")}  # a user has none
    env.update(PATH=os.path.join(tmp, "bin") + os.pathsep + env.get("PATH", ""),
               PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    env.pop("KUBECONFIG", None)
    return subprocess.run(command, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout).stdout.decode("utf-8", "replace")


def check(output, haproxy, tmp):
    """Every documented line was printed; the temporary directory reads as /tmp again."""
    output = output.replace(tmp, "/tmp")
    seen = {normalize(line) for line in output.splitlines()}
    expected = expected_lines(haproxy)
    if not shutil.which("haproxy"):
        expected = [line for line in expected if not any(m in line for m in _NEEDS_HAPROXY_26)]
    missing = [line for line in expected if line not in seen]
    assert not missing, ("lines documented in docs/getting-started.md that the commands did not print:\n"
                         + "\n".join(missing) + "\n\n--- what they printed:\n" + output)


@pytest.fixture
def workdir():
    # short: HAProxy's UNIX sockets live here, and their paths are limited to ~100 bytes
    tmp = tempfile.mkdtemp(prefix="lbsync-gs-")
    try:
        yield tmp
    finally:
        pidfile = os.path.join(tmp, "haproxy.pid")
        if os.path.exists(pidfile):
            try:
                os.kill(int(open(pidfile).read().split()[0]), signal.SIGTERM)
            except (ValueError, ProcessLookupError, IndexError):
                pass
        shutil.rmtree(tmp, ignore_errors=True)


def test_doc_has_the_marked_blocks():
    assert blocks("example", False) and blocks("output", False)
    assert blocks("example", True) and blocks("output", True)
    for block in blocks("example", False) + blocks("example", True):
        assert "lbsync" in block or "openssl" in block or "curl" in block or "haproxy" in block


def test_example_without_haproxy(workdir):
    prepare(workdir)
    output = run(["bash", "-c", script(False, workdir)], workdir)
    check(output, False, workdir)


def _netns_ok():
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return probe.returncode == 0


@pytest.mark.integration
def test_example_with_haproxy(workdir):
    for tool in ("haproxy", "curl", "openssl"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    if not _netns_ok():
        pytest.skip("cannot make a private network namespace (unshare -rn)")
    prepare(workdir)
    output = run(["unshare", "-rn", "bash", "-c", "ip link set lo up\n" + script(True, workdir)], workdir)
    check(output, False, workdir)
    check(output, True, workdir)
