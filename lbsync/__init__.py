"""lbsync: compiles a Kubernetes cluster's Services and endpoints into an HAProxy config."""

__version__ = "0.1.0"
