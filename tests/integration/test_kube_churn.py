"""Revision churn: the global resourceVersion moves on (node leases, Events) while no Service or
endpoint changes. Each list then has a new resourceVersion but the very same items: the poll
decodes nothing, and the sync builds nothing, renders nothing and leaves the file alone."""
from __future__ import annotations

import os

import pytest

from lbsync import model, settings as settings_mod, sync
from lbsync.kube import ApiSource, credentials
from tests.fakeapi import DEFAULT_TOKEN, FakeKubeApi
from tests.fakeapi.fixtures import fake_api, fake_api_tls, fake_tls_material  # noqa: F401


def source(api: FakeKubeApi, tmp_path, **kwargs) -> ApiSource:
    path = api.write_kubeconfig(str(tmp_path / "kc"), auth="token")
    return ApiSource(credentials.load(path, env={}), **kwargs)


def test_fake_api_revision_moves_on_without_any_object_changing(fake_api):  # noqa: F811
    fake_api.populate(3, 2)
    before = [dict(o) for o in fake_api.store.items("services")]
    rv = fake_api.store.rv
    assert fake_api.store.advance_revision() == rv + 1
    assert fake_api.store.items("services") == before


@pytest.mark.parametrize("namespaces", [(), ("a", "b")])
def test_churned_lists_are_not_decoded_and_keep_their_version(fake_api, tmp_path, namespaces):  # noqa: F811
    fake_api.populate(30, 3, namespaces=["a", "b"])
    src = source(fake_api, tmp_path, namespaces=namespaces)
    first = src.fetch()
    for _ in range(3):
        fake_api.store.advance_revision(5)
        churned = src.fetch(unchanged_since=first.version)
        assert churned.version == first.version and churned.services == () and churned.endpoint_slices == ()
        assert churned.requests == 2 * max(1, len(namespaces))  # one download per list


def test_a_change_under_churn_is_decoded(fake_api, tmp_path):  # noqa: F811
    fake_api.populate(30, 3, namespaces=["a", "b"])
    src = source(fake_api, tmp_path)
    first = src.fetch()
    fake_api.store.advance_revision()
    fake_api.set_endpoints("b", "svc-00003", ready=["10.9.9.9"])
    moved = src.fetch(unchanged_since=first.version)
    assert moved.version != first.version and len(moved.services) == 30
    assert any(e["addresses"] == ["10.9.9.9"] for sl in moved.endpoint_slices for e in sl["endpoints"] or ())
    assert src.fetch(unchanged_since=moved.version).services == ()


def test_paged_lists_under_churn_are_listed_again(tmp_path):
    with FakeKubeApi(tokens=[DEFAULT_TOKEN], honor_limit_with_rv0=True) as api:
        api.populate(12, 2)
        src = source(api, tmp_path, page_size=5)
        first = src.fetch()
        api.store.advance_revision()
        again = src.fetch(unchanged_since=first.version)
    assert len(again.services) == 12 and again.version != first.version  # several pages: no signature


def settings_for(api, tmp_path):
    kc = api.write_kubeconfig(str(tmp_path / "kc"), auth="token")
    return settings_mod.Settings(kubeconfig=kc, haproxy_config=str(tmp_path / "haproxy.cfg"),
                                 http_bind="127.0.0.1:18080", stats_bind="", haproxy_version="2.6")


def test_sync_under_churn_builds_and_renders_nothing_and_leaves_the_file(fake_api, tmp_path,  # noqa: F811
                                                                         monkeypatch):
    fake_api.populate(10, 2)
    syncer = sync.Syncer(settings_for(fake_api, tmp_path))
    assert syncer.run().written
    path = tmp_path / "haproxy.cfg"
    before = (os.stat(path).st_ino, os.stat(path).st_mtime_ns, path.read_text())
    calls = []
    monkeypatch.setattr(model, "part", lambda *a: calls.append("part"))
    monkeypatch.setattr(model, "assemble", lambda *a: calls.append("assemble"))
    monkeypatch.setattr(syncer.renderer, "render", lambda *a, **k: calls.append("render"))
    stop = fake_api.churn(0.01)
    try:
        for _ in range(3):
            result = syncer.run()
            assert result.skipped_render and not result.written and not result.changed
    finally:
        stop.set()
    assert calls == [] and fake_api.store.rv > 1000 + 20
    assert (os.stat(path).st_ino, os.stat(path).st_mtime_ns, path.read_text()) == before
