"""One sync pass: what is a runtime update, what needs a reload, and what is skipped altogether."""
import os
import shutil

import pytest
import yaml

from lbsync import textdiff
from lbsync import haproxy, settings as settings_mod, slots, sync
from lbsync.endpoints import Server
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


def apply_unified(old_lines, diff_text):
    """Apply a unified diff (as printed) to a list of lines; checks every context line."""
    import re
    out, pos, lines = [], 0, diff_text.splitlines(keepends=True)[2:]
    i = 0
    while i < len(lines):
        m = re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", lines[i])
        assert m, lines[i]
        start, length = int(m.group(1)), int(m.group(2) or 1)
        first = start - 1 if length else start
        out += old_lines[pos:first]
        pos = first
        i += 1
        while i < len(lines) and not lines[i].startswith("@@"):
            tag, text = lines[i][0], lines[i][1:]
            if tag in " -":
                assert old_lines[pos] == text, (pos, text)
                pos += 1
            if tag in " +":
                out.append(text)
            i += 1
    return out + old_lines[pos:]


def test_unified_diff_is_a_correct_patch_for_random_edits():
    import random
    rnd = random.Random(3)
    for _ in range(500):
        a = [f"line {rnd.randint(0, 5)}\n" for _ in range(rnd.randint(0, 40))]
        b = list(a)
        for _ in range(rnd.randint(0, 5)):
            op = rnd.random()
            if op < 0.3 and b:
                del b[rnd.randrange(len(b))]
            elif op < 0.6:
                b.insert(rnd.randint(0, len(b)), f"new {rnd.randint(0, 9)}\n")
            elif b:
                b[rnd.randrange(len(b))] = "changed\n"
        diff = sync.unified_diff("".join(a), "".join(b), "p")
        assert (diff == "") == (a == b)
        if diff:
            assert apply_unified(a, diff) == b


def test_unified_diff_of_a_one_line_change_in_a_big_config_is_one_small_hunk():
    a = [f"    server s{i} 10.0.{i // 250}.{i % 250}:8080\n" for i in range(200_000)]
    b = list(a)
    b[123_456] = "    server s123457 10.9.9.9:8080\n"
    diff = sync.unified_diff("".join(a), "".join(b), "p")
    assert diff.count("\n") == 2 + 1 + 7 + 1 and "@@ -123454,7 +123454,7 @@" in diff


@pytest.mark.parametrize("old, new", [("", "x\n"), ("", "x\ny\n"), ("x\ny\n", ""), ("x\n", ""), ("", "x\ny")])
def test_diff_against_an_empty_file_is_what_difflib_prints(old, new):
    import difflib
    expected = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                            fromfile="p", tofile="p (new)"))
    assert sync.unified_diff(old, new, "p") == expected


def _server_lines(text):
    return [line.strip() for line in text.splitlines() if line.startswith("    server ")]


def test_spare_slots_only_with_a_runtime_api_socket(env):
    tmp, cluster, s = env
    write_cluster(cluster, ["10.0.0.2", "10.0.0.1", "10.0.0.3"])
    plain, _ = make(s)
    assert _server_lines(plain.plan().text) == ["server s1 10.0.0.1:8080", "server s2 10.0.0.2:8080",
                                                "server s3 10.0.0.3:8080"]
    with_socket, _ = make(s, runtime=haproxy.RuntimeApi(str(tmp / "admin.sock")))
    lines = _server_lines(with_socket.plan().text)
    assert lines[:3] == ["server s1 10.0.0.1:8080", "server s2 10.0.0.2:8080", "server s3 10.0.0.3:8080"]
    assert lines[3:] and all(line.endswith("127.0.0.1:1 disabled") for line in lines[3:])


@needs_haproxy
def test_why_names_resized_backends_from_the_live_file_without_a_runtime_socket(env):
    tmp, cluster, s = env
    syncer, reloader = make(s)
    syncer.run()
    write_cluster(cluster, ["10.0.0.1", "10.0.0.3", "10.0.0.4"], services=("web", "api"))
    plan = syncer.plan()
    assert plan.parsed is None  # no Runtime API: the live file was not parsed into slots
    assert plan.why() == "backends added: api.example.com; server slots resized: web.example.com"


def test_unified_diff_of_big_configs_is_what_a_whole_line_diff_prints():
    """The shared start and end are cut on the strings, before any line is split: the diff
    is the one the line-by-line way gives, for changes anywhere (first and last lines,
    inserts, deletes, no final newline, other line ends)."""
    import random
    rnd = random.Random(5)
    for _ in range(300):
        a = [f"    server s{i} 10.0.{i // 250}.{i % 250}:{rnd.choice((80, 8080))}\n" for i in range(rnd.randint(0, 60))]
        b = list(a)
        for _ in range(rnd.randint(1, 4)):
            op, at = rnd.random(), rnd.randint(0, len(b))
            if op < 0.3 and b:
                del b[min(at, len(b) - 1)]
            elif op < 0.6:
                b.insert(at, rnd.choice(("new\n", "    server s1 10.0.0.0:80\n", "\n", "x\r\n")))
            elif b:
                b[min(at, len(b) - 1)] = "changed\n"
        old, new = "".join(a), "".join(b)
        if rnd.random() < 0.2:
            new = new.rstrip("\n")
        assert sync.unified_diff(old, new, "p") == textdiff._line_diff(old, new, "p", 3, 0)


@needs_haproxy
def test_previous_layout_is_the_written_one_until_the_file_is_edited(env):
    tmp, cluster, s = env
    syncer, _ = make(s, runtime=haproxy.RuntimeApi(str(tmp / "admin.sock")))
    syncer.run()
    write_cluster(cluster, ["10.0.0.1", "10.0.0.3"])
    plan = syncer.plan()
    assert plan.parsed == slots.parse(plan.live)  # what the file says, without parsing it
    assert plan.parsed is syncer._written[1]
    with open(s.haproxy_config) as f:  # an edit by hand: the file is read again
        text = f.read()
    with open(s.haproxy_config, "w") as f:
        f.write(text.replace("server s2 10.0.0.2:8080", "server s2 10.0.0.9:8080"))
    edited = syncer.plan()
    assert edited.parsed is not syncer._written[1]
    assert edited.parsed["web.example.com"][1] == Server("10.0.0.9", 8080)


SERVERS_CFG = """global
    maxconn 100

backend web.example.com
    balance roundrobin
    server s1 10.0.0.1:8080
    server s2 127.0.0.1:1 disabled
  server s3 [fd00::1]:80 weight 3
backend api
    server s1 10.0.0.5:80
"""


@pytest.mark.parametrize("edit", [
    ("server s1 10.0.0.1:8080", "server s1 10.0.0.7:8080"),
    ("server s2 127.0.0.1:1 disabled", "server s2 10.0.0.3:8080"),
    ("server s3 [fd00::1]:80 weight 3", "server s3 [fd00::1]:80 weight 4"),
    ("server s1 10.0.0.1:8080", "server s9 10.0.0.1:8080"),
    ("balance roundrobin", "balance leastconn"),
    ("backend api", "backend api2"),
    ("    maxconn 100\n", "    maxconn 100\n\n"),
    ("\n    server s1 10.0.0.5:80", "\n    server s1 10.0.0.5:80\n    server s2 10.0.0.6:80"),
    ("server s1 10.0.0.5:80", "server s1 10.0.0.5:80 "),
    ("server s1 10.0.0.5:80", "server s1"),
])
def test_only_servers_differ_agrees_with_masking_whole_configs(edit):
    after = SERVERS_CFG.replace(*edit)
    assert after != SERVERS_CFG
    expected = slots.mask_servers(SERVERS_CFG) == slots.mask_servers(after)
    assert slots.only_servers_differ(SERVERS_CFG, after) is expected
    assert slots.only_servers_differ(after, SERVERS_CFG) is expected


def test_assign_keeps_a_backend_whose_pods_stayed_and_moves_one_whose_pods_changed():
    a, b, c = Server("10.0.0.1", 80), Server("10.0.0.2", 80), Server("10.0.0.3", 80)
    previous = (None, b, a, None)
    assert slots.assign([a, b], previous) == previous
    assert slots.assign([b, a, a], previous) == previous
    assert slots.assign([a, c], previous) == (c, None, a, None)  # b's slot is not reused first
    assert slots.assign([a, Server("10.0.0.2", 80, 5)], previous) == (None, Server("10.0.0.2", 80, 5), a, None)


@needs_haproxy
def test_a_pod_move_before_haproxy_is_known_to_run_the_file_is_reloaded_and_says_why(env):
    """A new lbsync does not know what the running HAProxy holds: its first pass reloads even a
    Pod move (the Runtime API could only be trusted against a known state), and says so."""
    tmp, cluster, s = env
    s = settings_mod.Settings(**{**vars(s), "runtime_socket": str(tmp / "admin.sock")})
    syncer, _ = make(s)
    syncer.run()  # the file HAProxy will read
    write_cluster(cluster, ["10.0.0.1", "10.0.0.3"])
    restarted, reloader = make(s, runtime=haproxy.RuntimeApi(str(tmp / "admin.sock")))
    plan = restarted.plan()
    assert not plan.quick and not plan.structural
    assert restarted.run_plan(plan).reloaded
    assert "only Pods moved, but HAProxy is not known to run the live file yet" in reloader.reasons[0]
