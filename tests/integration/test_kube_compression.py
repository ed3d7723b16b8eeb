"""Answers gzipped as kube-apiserver gzips them (a get or list over 128 KiB, for a client that
accepts gzip, as requests does), and a kubeconfig's `disable-compression`."""
from __future__ import annotations

import pytest
import yaml

from lbsync import wiring
from lbsync.exceptions import CredentialsError
from lbsync.kube import ApiSource, credentials
from lbsync.snapshot import Unread, identity
from tests.fakeapi import FakeKubeApi
from tests.unit.test_incremental import settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def gzipping():
    api = FakeKubeApi(anonymous=True, compress_over=1024)  # these small lists gzipped too
    api.populate(30, 3)
    with api:
        yield api


def kubeconfig(api: FakeKubeApi, tmp_path, **cluster) -> str:
    path = api.write_kubeconfig(str(tmp_path / "kc"), auth="none")
    with open(path) as f:
        doc = yaml.safe_load(f)
    doc["clusters"][0]["cluster"].update(cluster)
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    return path


def source(path: str, **kwargs) -> ApiSource:
    return ApiSource(credentials.load(path, env={}), **kwargs)


def test_gzipped_lists_are_probed_held_and_read_item_by_item_alike(gzipping, tmp_path):
    src = source(kubeconfig(gzipping, tmp_path), stand_ins=True)
    sent = gzipping.bytes_sent
    first = src.fetch()
    assert first.bytes == gzipping.bytes_sent - sent  # counted as received: gzipped
    assert all("gzip" in r.headers.get("Accept-Encoding", "") for r in gzipping.requests)
    plain = source(kubeconfig(gzipping, tmp_path, **{"disable-compression": True})).fetch()
    assert plain.bytes > 3 * first.bytes and len(plain.services) == len(first.services) == 30
    gzipping.store.advance_revision()  # revision churn: the same items, gzipped again
    same = src.fetch(unchanged_since=first.version)
    assert same.version == first.version and same.services == () and same.requests == 2
    gzipping.set_endpoints("default", "svc-00007", ready=["127.9.9.9"])
    moved = src.fetch(unchanged_since=first.version)
    assert moved.requests == 2  # the probe's gzipped body is held for the fetch, as a plain one
    assert {o["metadata"]["name"] for o in moved.services if not isinstance(o, Unread)} == {"svc-00007"}
    fresh = source(kubeconfig(gzipping, tmp_path)).fetch()
    assert [identity(o) for o in moved.endpoint_slices] == [identity(o) for o in fresh.endpoint_slices]
    assert [identity(o) for o in moved.services] == [identity(o) for o in fresh.services]


def test_disable_compression_in_the_kubeconfig_asks_for_answers_not_gzipped(gzipping, tmp_path):
    src = source(kubeconfig(gzipping, tmp_path, **{"disable-compression": True}))
    sent = gzipping.bytes_sent
    snap = src.fetch()
    assert gzipping.bytes_sent - sent == snap.bytes and len(snap.services) == 30
    assert {r.headers.get("Accept-Encoding") for r in gzipping.requests} == {"identity"}


def test_a_disable_compression_that_is_not_true_or_false_is_refused(gzipping, tmp_path):
    with pytest.raises(CredentialsError, match=r"cluster 'fake-cluster': disable-compression is a str, not true"):
        credentials.load(kubeconfig(gzipping, tmp_path, **{"disable-compression": "yes"}), env={})


@pytest.mark.parametrize("setting, field, gzipped", [(True, False, True), (False, False, False), (True, True, False)])
def test_the_api_compression_setting_or_the_kubeconfig_field_turns_it_off(gzipping, tmp_path, setting, field, gzipped):
    """In a Pod, with the service account's credentials, there is no kubeconfig to say it."""
    path = kubeconfig(gzipping, tmp_path, **({"disable-compression": True} if field else {}))
    src = wiring.make_source(settings_for(tmp_path, kubeconfig=path, api_compression=setting))
    sent = gzipping.bytes_sent
    snap = src.fetch()
    assert snap.bytes == gzipping.bytes_sent - sent and len(snap.services) == 30
    assert (snap.bytes < 60_000) is gzipped  # 30 Services x 3 ports, 3 endpoints: about 90 kB as JSON
