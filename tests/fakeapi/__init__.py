"""A fake Kubernetes API server for lbsync's tests (loopback only, stdlib http.server).

    from tests.fakeapi import FakeKubeApi
    with FakeKubeApi(anonymous=True) as api:
        api.add_service("web", "default", [("http", 80, 8080)])
        api.set_endpoints("default", "web", ready=["10.0.0.1"], not_ready=["10.0.0.2"])
        ...  # talk to api.url

Pytest fixtures live in tests.fakeapi.fixtures; `python -m tests.fakeapi` runs it standalone.
"""
from tests.fakeapi.server import DEFAULT_TOKEN, DEFAULT_USER, FakeKubeApi, RequestRecord
from tests.fakeapi.tls import TlsMaterial, generate as generate_tls

__all__ = ["DEFAULT_TOKEN", "DEFAULT_USER", "FakeKubeApi", "RequestRecord", "TlsMaterial",
           "generate_tls"]
