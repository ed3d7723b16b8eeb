"""Fixtures shared by every test module: the fake Kubernetes API server (plain and TLS)."""
from tests.fakeapi.fixtures import fake_api, fake_api_tls, fake_tls_material  # noqa: F401
