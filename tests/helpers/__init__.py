"""Shared helpers for integration tests: loopback HTTP backends and a real HAProxy process."""
