"""Reading Services and endpoints from a live Kubernetes API server, without the SDK.

credentials.load() finds the server and the credentials like kubectl (kubeconfig, exec
plugins, in-cluster service account); client.ApiSource(credentials).fetch() returns a
lbsync.snapshot.Snapshot, and informer.WatchSource (--watch) keeps one current through
watches. Failures are lbsync.exceptions.ApiError / CredentialsError.
"""
from lbsync.kube.client import ApiSource
from lbsync.kube.credentials import Credentials, from_kubeconfig, in_cluster, load
from lbsync.kube.informer import WatchSource

__all__ = ["ApiSource", "Credentials", "WatchSource", "from_kubeconfig", "in_cluster", "load"]
