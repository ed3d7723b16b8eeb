"""Fixtures shared by every test module (the fake Kubernetes API server, plain and TLS), logging
put back to its defaults after each test, and the `haproxy` marker: every test that runs the
haproxy binary gets it, without anyone writing it.

scripts/test-matrix.sh runs the whole suite against Debian's HAProxy, then `-m haproxy` again
against another version. A test is marked when its module uses tests.helpers.haproxy_proc, when
it carries @pytest.mark.haproxy, or when the first run saw it start haproxy: that run puts a
recording `haproxy` first on PATH and names the file of node ids in TEST_HAPROXY_RECORD.
"""
import os

import pytest
import structlog

from lbsync.haproxy.check import forget_build_info
from tests.fakeapi.fixtures import fake_api, fake_api_tls, fake_tls_material  # noqa: F401

HELPERS = "tests.helpers.haproxy_proc"


def _uses_helpers(module) -> bool:
    return any(getattr(value, "__module__", None) == HELPERS or getattr(value, "__name__", None) == HELPERS
               for value in vars(module).values())


def _recorded() -> set:
    path = os.environ.get("TEST_HAPROXY_RECORD")
    if not path or not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as fh:
        return {line.strip() for line in fh if line.strip()}


def pytest_collection_modifyitems(config, items):
    recorded = _recorded()
    for item in items:
        module = getattr(item, "module", None)
        if item.nodeid in recorded or (module is not None and _uses_helpers(module)):
            item.add_marker(pytest.mark.haproxy)


@pytest.fixture(autouse=True)
def _fresh_haproxy_build_info():
    """lbsync asks `haproxy -vv` once per binary file per process: each test asks afresh, so the
    first run's recording wrapper sees every test that uses the binary, whatever the order."""
    forget_build_info()


@pytest.fixture(autouse=True)
def _fresh_logging():
    """A test that ran lbsync's CLI in-process leaves structlog writing to its captured (then
    closed) stdout: the next test's log line would fail with 'I/O operation on closed file'."""
    yield
    structlog.reset_defaults()
