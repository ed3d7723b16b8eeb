"""Write-behind (--watch): the file of a Runtime API update lands after the pass, in order,
without holding up the next change; a failed write is handed to the next pass."""
import threading

import pytest

from lbsync import haproxy, sync
from lbsync.writebehind import WriteBehind
from tests.unit.test_nodes import RecordingRuntime
from tests.unit.test_sync import env, make, needs_haproxy, write_cluster  # noqa: F401 - env is a fixture


class Gate:
    """A write that waits until opened, and records what it wrote."""

    def __init__(self, fail=None):
        self.open, self.started, self.written, self.fail = threading.Event(), threading.Event(), [], fail

    def __call__(self, plan):
        self.started.set()
        assert self.open.wait(5)
        if self.fail is not None and plan == self.fail:
            raise OSError("disk full")
        self.written.append(plan)


def test_writes_land_in_order_and_the_newest_queued_text_wins():
    gate = Gate()
    wb = WriteBehind(gate)
    wb.submit("a")
    assert gate.started.wait(5)
    wb.submit("b")
    wb.submit("c")  # "b" was only queued: the file only needs "c"
    assert wb.ahead() == "c"
    gate.open.set()
    assert wb.drain(5)
    assert gate.written == ["a", "c"] and wb.ahead() is None and wb.take_error() is None


def test_a_failed_write_is_kept_for_the_next_pass_and_wakes_the_loop():
    gate, woken = Gate(fail="a"), []
    wb = WriteBehind(gate, on_failure=lambda: woken.append(True))
    wb.submit("a")
    assert gate.started.wait(5)
    wb.submit("b")
    gate.open.set()
    assert wb.drain(5)
    error = wb.take_error()
    assert isinstance(error, OSError) and woken == [True]
    assert gate.written == [] and wb.ahead() is None  # the queued one went too: the next pass redoes it
    assert wb.take_error() is None


@pytest.fixture
def slow_check(monkeypatch):
    """`haproxy -c` held until the test lets it go: a pass must not wait for it."""
    gate, real = threading.Event(), haproxy.check_config

    def check(path, **kw):
        assert gate.wait(10)
        return real(path, **kw)
    monkeypatch.setattr(haproxy, "check_config", check)
    return gate


@needs_haproxy
def test_runtime_updates_do_not_wait_for_the_previous_write_and_a_revert_is_applied(env, slow_check):
    tmp, cluster, s = env
    slow_check.set()
    syncer, _ = make(s, runtime=RecordingRuntime())
    syncer.run()
    syncer.in_sync = True  # as after a reload
    woken = []
    syncer.write_behind(lambda: woken.append(True))
    slow_check.clear()
    write_cluster(cluster, ["10.0.0.1", "10.0.0.3"])
    first = syncer.run()
    assert first.runtime_updates and "10.0.0.3" not in open(s.haproxy_config).read()  # not yet written
    write_cluster(cluster, ["10.0.0.1", "10.0.0.2"])  # back as the file still says: HAProxy must follow
    sent = len(syncer.runtime.sent)
    back = syncer.run()
    assert back.runtime_updates and any("addr 10.0.0.2 " in c for c in syncer.runtime.sent[sent:])
    slow_check.set()
    syncer.drain(10)
    text = open(s.haproxy_config).read()
    assert "10.0.0.2:8080" in text and "10.0.0.3" not in text and not woken
    assert syncer.run().skipped_render  # settled by the write: nothing left to do


@needs_haproxy
def test_a_failed_write_behind_fails_the_next_pass_which_writes_again(env, monkeypatch):
    tmp, cluster, s = env
    syncer, _ = make(s, runtime=RecordingRuntime())
    syncer.run()
    syncer.in_sync = True
    woken = []
    syncer.write_behind(lambda: woken.append(True))
    real = haproxy.replace
    monkeypatch.setattr(haproxy, "replace", lambda *a, **kw: (_ for _ in ()).throw(OSError("disk full")))
    write_cluster(cluster, ["10.0.0.1", "10.0.0.3"])
    assert syncer.run().runtime_updates
    syncer.drain(10)
    assert woken == [True]
    with pytest.raises(OSError, match="disk full"):
        syncer.run()
    monkeypatch.setattr(haproxy, "replace", real)
    assert syncer.run().runtime_updates is not None
    syncer.drain(10)
    assert "10.0.0.3:8080" in open(s.haproxy_config).read()
