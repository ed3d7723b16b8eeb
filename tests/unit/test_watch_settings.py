"""--watch, --resync and --watch-timeout: one declaration, three spellings, clear errors."""
import argparse

import pytest

from lbsync import settings, sync
from lbsync.exceptions import SettingsError
from lbsync.kube import ApiSource, WatchSource
from tests.fakeapi.kubeconfig import write_kubeconfig


def parsed(*argv):
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_polling_stays_the_default():
    s = settings.load(env={})
    assert s.watch is False and s.resync == 300.0 and s.watch_timeout == 300.0


@pytest.mark.parametrize("how", ["flag", "env", "file"])
def test_watch_can_be_turned_on_each_way(tmp_path, how):
    if how == "flag":
        s = settings.load(args=parsed("--watch", "--resync", "120"), env={})
    elif how == "env":
        s = settings.load(env={"LBSYNC_WATCH": "true", "LBSYNC_RESYNC": "120"})
    else:
        path = tmp_path / "lbsync.yaml"
        path.write_text("watch: true\nresync: 120\n")
        s = settings.load(config_file=str(path), env={})
    assert s.watch is True and s.resync == 120.0


@pytest.mark.parametrize("env, message", [
    ({"LBSYNC_RESYNC": "-1"}, "resync: -1.0 must be 0"),
    ({"LBSYNC_WATCH_TIMEOUT": "0.5"}, "watch_timeout: 0.5 must be at least 1 second"),
    ({"LBSYNC_WATCH": "maybe"}, "watch = 'maybe' is not a valid bool"),
])
def test_bad_watch_settings_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        settings.load(env=env)


def test_the_source_is_a_watch_only_when_asked(tmp_path):
    kc = write_kubeconfig(str(tmp_path / "kc"), "http://127.0.0.1:1", token="t")
    polled = sync.make_source(settings.load(env={"KUBECONFIG": kc, "LBSYNC_KUBECONFIG": kc}))
    watched = sync.make_source(settings.load(env={"LBSYNC_KUBECONFIG": kc, "LBSYNC_WATCH": "1",
                                                  "LBSYNC_NAMESPACES": "a,b", "LBSYNC_WATCH_TIMEOUT": "60"}))
    assert type(polled) is ApiSource and type(watched) is WatchSource
    # Services and EndpointSlices in each namespace; each a thread of its own once started
    assert sorted(r.key for r in watched.reflectors) == ["a/endpointslices", "a/services",
                                                         "b/endpointslices", "b/services"]
    assert all(r.watch_timeout == 60.0 and r.resync == 300.0 for r in watched.reflectors)
    watched.close()
    polled.close()


def test_watch_serves_the_nodeport_backend_mode(tmp_path):
    kc = write_kubeconfig(str(tmp_path / "kc"), "http://127.0.0.1:1", token="t")
    watched = sync.make_source(settings.load(env={"LBSYNC_KUBECONFIG": kc, "LBSYNC_WATCH": "1",
                                                  "LBSYNC_BACKEND_MODE": "nodeport"}))
    assert type(watched) is WatchSource and watched.backend_mode == "nodeport"
    assert watched.node_reflector is None  # Nodes are watched from the first pass that needs them
    watched.close()
