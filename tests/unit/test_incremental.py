"""Incremental passes: a change re-builds and re-renders only what it touched, and the text is
byte for byte what a cold pass over the same cluster gives; under revision churn nothing runs."""
import gc
import random
import uuid
import weakref

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lbsync import incremental, model, regroup, settings as settings_mod, sync
from lbsync.exceptions import LbsyncError
from lbsync.snapshot import Snapshot
from tests.cluster import slice_, svc

HOSTS = ["a.example.com", "b.example.com", "*.example.com", "c.example.com,a.example.com"]


class MemorySource:
    """A source handing the objects it holds, each with a uid and resourceVersion (like a watch):
    an unchanged one is the very same object at the next fetch (`held`)."""

    def __init__(self):
        self.objs = {}  # (kind, ns, name) -> object
        self.rv = 100

    def put(self, obj, *, identity=True):
        self.rv += 1
        meta = obj["metadata"]
        key = (obj["kind"], meta["namespace"], meta["name"])
        old = self.objs.get(key)
        if identity:
            meta["uid"] = old["metadata"].get("uid") if old else str(uuid.UUID(int=random.getrandbits(128)))
            meta["resourceVersion"] = str(self.rv)
        else:
            meta.pop("uid", None)
        self.objs[key] = obj

    def fetch(self, *, unchanged_since=""):
        of = lambda kind: tuple(o for k, o in self.objs.items() if k[0] == kind)  # noqa: E731
        return Snapshot(services=of("Service"), endpoint_slices=of("EndpointSlice"), held=True)


def settings_for(tmp_path, **extra):
    return settings_mod.Settings(haproxy_config=str(tmp_path / "haproxy.cfg"), http_bind="127.0.0.1:18080",
                                 haproxy_version="2.6", stats_bind="", **extra)


def service(rnd, i):
    ann = {}
    if rnd.random() < 0.6:
        ann["lb.host"] = rnd.choice(HOSTS)
    if rnd.random() < 0.2:
        ann["lb.path-prefix"] = rnd.choice(["/shop", "/api", "none"])
    if rnd.random() < 0.2:
        ann["lb.cookie-sticky-session"] = "true"
    if rnd.random() < 0.1:
        ann["lb.tcp"] = "http:%d" % rnd.choice([20001, 20002])
    ports = [("http", 80, "http")] + ([("admin", 9000, "admin")] if rnd.random() < 0.3 else [])
    return svc("s%d" % i, rnd.choice(["a", "b"]), ports=ports, annotations=ann,
               created="2026-01-%02dT00:00:00Z" % rnd.randint(1, 9))


def endpoints(rnd, s, suffix="x"):
    ready = ["10.%d.%d.%d" % (rnd.randint(0, 3), rnd.randint(0, 3), rnd.randint(1, 9))
             for _ in range(rnd.randint(0, 4))]
    return slice_(s["metadata"]["name"], s["metadata"]["namespace"], ready=ready, suffix=suffix,
                  ports=[("http", 8080), ("admin", 9000)])


def change(rnd, src, i):
    services = [o for k, o in src.objs.items() if k[0] == "Service"]
    what = rnd.choice(["endpoints", "endpoints", "service", "add", "delete", "second-slice", "no-uid"])
    if what == "add" or not services:
        s = service(rnd, i)
        src.put(s)
        src.put(endpoints(rnd, s))
        return
    s = rnd.choice(services)
    name, ns = s["metadata"]["name"], s["metadata"]["namespace"]
    if what == "endpoints":
        src.put(endpoints(rnd, s))
    elif what == "second-slice":
        src.put(endpoints(rnd, s, suffix="y"))
    elif what == "service":
        fresh = service(rnd, int(name[1:]))
        fresh["metadata"]["namespace"] = ns
        del src.objs[("Service", ns, name)]
        src.put(fresh)
    elif what == "delete":
        for k in [k for k in src.objs if k[1] == ns and (k[2] == name or k[2].startswith(name + "-"))]:
            del src.objs[k]
    else:
        src.put(endpoints(rnd, s), identity=False)  # a hand-written object: never reused


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False), st.booleans())
def test_incremental_passes_give_the_bytes_of_a_cold_pass(tmp_path, rnd, watch):
    """With a watch the last text is kept and changed sections are spliced into it."""
    random.seed(rnd.random())
    src = MemorySource()
    for i in range(8):
        change(rnd, src, i)
    warm = sync.Syncer(settings_for(tmp_path, watch=watch), source=src)
    for step in range(25):
        change(rnd, src, 8 + step % 6)
        got = warm.plan()
        cold = model.build(src.fetch(), warm.options)  # no cache at all
        assert got.text == warm.renderer.render(cold)
        assert got.topology.problems == cold.problems
        assert got.topology.backends == cold.backends
        assert [b.not_ready for b in got.topology.backends] == [b.not_ready for b in cold.backends]


def test_one_endpoint_change_rebuilds_and_rerenders_only_that_service(tmp_path):
    rnd = random.Random(3)
    src = MemorySource()
    for i in range(30):
        s = service(rnd, i)
        s["metadata"]["annotations"] = {}  # no conflicts: every Service has its own backends
        src.put(s)
        src.put(endpoints(rnd, s))
    warm = sync.Syncer(settings_for(tmp_path, watch=True), source=src)
    first = warm.plan()
    assert first.text  # rendered when first asked
    assert warm.cache.parts_built == 30 and warm.cache.sections_rendered == len(first.topology.backends)
    target = src.objs[("Service", "a", "s7")] if ("Service", "a", "s7") in src.objs else \
        src.objs[("Service", "b", "s7")]
    src.put(slice_("s7", target["metadata"]["namespace"], ready=["10.9.9.9"], suffix="x",
                   ports=[("http", 8080), ("admin", 9000)]))
    plan = warm.plan()
    ports = len(target["spec"]["ports"])
    assert "10.9.9.9:8080" in plan.text
    assert warm.cache.parts_built == 1 and warm.cache.sections_rendered == ports
    assert warm.cache.patched  # conflicts not settled again: only servers moved
    assert warm.cache.spliced  # nor the file around the sections rendered again
    assert plan.text == sync.Syncer(settings_for(tmp_path), source=src).plan().text
    src.put(svc("s7", target["metadata"]["namespace"], annotations={"lb.host": "new.example.com"}))
    plan = warm.plan()
    assert not warm.cache.patched and "new.example.com" in plan.text  # a Service edit: settled in full


def test_changed_options_rebuild_everything(tmp_path):
    src = MemorySource()
    s = svc("web", "a", annotations={"lb.host": "web.example.com"})
    src.put(s)
    src.put(slice_("web", "a", ready=["10.0.0.1"]))
    cache = incremental.Cache()
    first = cache.topology(src.fetch(), model.Options())
    assert cache.parts_built == 1
    cache.topology(src.fetch(), model.Options())
    assert cache.parts_built == 0
    other = cache.topology(src.fetch(), model.Options(check_interval_ms=500))
    assert cache.parts_built == 1 and other.backends[0].check_interval_ms == 500 != first.backends[0].check_interval_ms


@pytest.fixture
def applied(tmp_path):
    src = MemorySource()
    for name in ("web", "api"):
        src.put(svc(name, "a", annotations={"lb.host": f"{name}.example.com"}))
        src.put(slice_(name, "a", ready=["10.0.0.1", "10.0.0.2"]))
    syncer = sync.Syncer(settings_for(tmp_path, haproxy_binary="haproxy"), source=src)
    return src, syncer


def test_revision_churn_runs_no_model_no_render_and_leaves_the_file_alone(applied, tmp_path, monkeypatch):
    src, syncer = applied
    assert syncer.run().written
    path = tmp_path / "haproxy.cfg"
    before = (path.stat().st_mtime_ns, path.stat().st_ino, path.read_text())
    calls = []
    monkeypatch.setattr(model, "part", lambda *a: calls.append("part"))
    monkeypatch.setattr(model, "assemble", lambda *a: calls.append("assemble"))
    monkeypatch.setattr(syncer.renderer, "render", lambda *a, **k: calls.append("render"))
    for _ in range(3):  # new snapshot objects, same uid and resourceVersion: what churn hands over
        src.objs = {k: dict(o) for k, o in src.objs.items()}
        result = syncer.run()
        assert result.skipped_render and not result.written and not result.changed
    assert calls == []
    assert (path.stat().st_mtime_ns, path.stat().st_ino, path.read_text()) == before


def test_a_real_change_after_churn_is_still_applied(applied, tmp_path):
    src, syncer = applied
    syncer.run()
    src.put(slice_("web", "a", ready=["10.0.0.7"]))
    result = syncer.run()
    assert result.written and "10.0.0.7:8080" in (tmp_path / "haproxy.cfg").read_text()


def test_a_template_of_ones_own_sees_whole_views_of_unchanged_backends(tmp_path):
    tpl = tmp_path / "mine.cfg.j2"
    tpl.write_text("{% for b in backends %}{{ b.name }} {{ b.check_host }} {{ b.host_acls }}\n"
                   "{{ b.servers_block }}\n{% endfor %}")
    src = MemorySource()
    for name in ("web", "api"):
        src.put(svc(name, "a", annotations={"lb.host": f"{name}.example.com"}))
        src.put(slice_(name, "a", ready=["10.0.0.1", "10.0.0.2"]))
    warm = sync.Syncer(settings_for(tmp_path, template=str(tpl)), source=src)
    assert warm.plan().text
    src.put(slice_("web", "a", ready=["10.0.0.3"]))
    text = warm.plan().text
    assert warm.cache.sections_rendered == 1  # api's view is the kept one
    assert not warm.cache.spliced  # a template of one's own may write servers anywhere: rendered whole
    assert text == warm.renderer.render(model.build(src.fetch(), warm.options))
    assert "api.example.com']\n    server s1 10.0.0.1:8080\n    server s2 10.0.0.2:8080" in text


def test_views_made_again_each_pass_answer_get_and_refuse_unknown_fields(tmp_path):
    """Only sections are kept between passes: the views a template of one's own sees are made
    again, with their derived fields there for `.get` too, and a misspelt field still fails."""
    tpl = tmp_path / "mine.cfg.j2"
    tpl.write_text("{% for b in backends %}{{ b.get('cookie_key') }} {{ b.get('nope', '-') }}\n{% endfor %}")
    src = MemorySource()
    src.put(svc("web", "a"))
    src.put(slice_("web", "a", ready=["10.0.0.1"]))
    syncer = sync.Syncer(settings_for(tmp_path, template=str(tpl)), source=src)
    assert syncer.plan().text == "lbsync-a-web-80 -\n"
    tpl.write_text("{% for b in backends %}{{ b.servers_blok }}{% endfor %}")
    syncer.refresh_renderer()
    with pytest.raises(LbsyncError, match="servers_blok"):
        syncer.plan().text  # noqa: B018 - the text is rendered when first asked


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_groups_made_again_only_where_objects_came_or_went_equal_model_group(rnd):
    """A source that hands unchanged objects on as the same objects (MemorySource, like a
    watch's store) lets lbsync.regroup patch the last Groups; they must be model.group's."""
    random.seed(rnd.random())
    src, grouper, options, patched = MemorySource(), regroup.Grouper(), model.Options(), 0
    for i in range(6):
        change(rnd, src, i)
    for step in range(30):
        change(rnd, src, 6 + step % 5) if rnd.random() < 0.3 else src.put(endpoints(rnd, rnd.choice(
            [o for k, o in src.objs.items() if k[0] == "Service"] or [service(rnd, 99)]), suffix=rnd.choice("xy")))
        snap = src.fetch()
        grouped = grouper.group(snap, options, None)
        want = model.group(snap, options, None)
        assert grouped.groups == want and [g.owner for g in grouped.groups] == [g.owner for g in want]
        if grouped.rebuilt is not None:
            patched += 1
            assert len(grouped.rebuilt) <= 2  # one object changed: its owner (and an old owner)
        grouper.commit(grouped)
    assert patched > 0


def test_moves_and_edits_look_only_at_their_groups_and_a_new_service_at_all(tmp_path):
    rnd, src = random.Random(7), MemorySource()
    for i in range(12):
        s = service(rnd, i)
        src.put(s)
        src.put(endpoints(rnd, s))
    warm = sync.Syncer(settings_for(tmp_path), source=src)
    warm.plan()
    services = [o for k, o in src.objs.items() if k[0] == "Service"]
    for s in services[:4]:
        src.put(slice_(s["metadata"]["name"], s["metadata"]["namespace"], ready=["127.1.1.%d" % rnd.randint(1, 9)],
                       ports=[("http", 8080), ("admin", 9000)]))
        got = warm.plan()
        assert warm.cache.regrouped and warm.cache.parts_built == 1
        assert got.text == warm.renderer.render(model.build(src.fetch(), warm.options))
    edited = service(rnd, 3)
    edited["metadata"]["namespace"] = services[3]["metadata"]["namespace"]
    src.put(edited)  # in its place: another object of the same Service
    got = warm.plan()
    assert warm.cache.regrouped and warm.cache.parts_built == 1
    assert got.text == warm.renderer.render(model.build(src.fetch(), warm.options))
    src.put(service(rnd, 40))
    got = warm.plan()
    assert not warm.cache.regrouped and got.text == warm.renderer.render(model.build(src.fetch(), warm.options))


@pytest.mark.parametrize("held", [False, True])
def test_the_objects_of_a_snapshot_are_kept_alive_only_if_their_source_holds_them_anyway(held):
    """A poll's read in full (20 MB of objects at 5,000 Services) must be freed before the
    render; a watch's store keeps its objects anyway, and the next pass compares with them."""
    class Obj(dict):  # a dict a weak reference can name
        pass

    rnd, src = random.Random(3), MemorySource()
    s = Obj(service(rnd, 1))
    src.put(s)
    sl = Obj(endpoints(rnd, s))
    src.put(sl)
    cache = incremental.Cache()
    cache.topology(Snapshot(services=(s,), endpoint_slices=(sl,), held=held), model.Options())
    refs = [weakref.ref(s), weakref.ref(sl)]
    del s, sl, src
    gc.collect()
    assert [r() is not None for r in refs] == [held, held]
