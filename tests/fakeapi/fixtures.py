"""Pytest fixtures for the fake API; import them into a conftest.py or a test module:

    from tests.fakeapi.fixtures import fake_api, fake_api_tls, fake_tls_material  # noqa: F401

fake_api: plain HTTP, anonymous allowed, DEFAULT_TOKEN also accepted.
fake_api_tls: HTTPS with its own CA, DEFAULT_TOKEN or the client cert required.
Both are empty and started; they stop (closing every connection) after the test.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.fakeapi.server import DEFAULT_TOKEN, FakeKubeApi
from tests.fakeapi.tls import TlsMaterial, generate


@pytest.fixture(scope="session")
def fake_tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """CA, server cert (127.0.0.1/localhost) and client cert, generated once per session."""
    return generate(str(tmp_path_factory.mktemp("fake-kube-pki")))


@pytest.fixture
def fake_api() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi(anonymous=True, tokens=[DEFAULT_TOKEN])
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def fake_api_tls(fake_tls_material: TlsMaterial) -> Iterator[FakeKubeApi]:
    api = FakeKubeApi(tls=fake_tls_material, tokens=[DEFAULT_TOKEN])
    api.start()
    try:
        yield api
    finally:
        api.stop()
