"""Run the fake API standalone: `python -m tests.fakeapi --port 8001 --tls --objects FILE.yaml`.

Prints the URL and writes a kubeconfig (token auth) so kubectl or lbsync can talk to it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import yaml

from tests.fakeapi.samples import wso2_cluster
from tests.fakeapi.server import DEFAULT_TOKEN, FakeKubeApi
from tests.fakeapi.tls import generate


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.fakeapi", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a generated CA")
    p.add_argument("--token", default=DEFAULT_TOKEN, help="accepted bearer token")
    p.add_argument("--anonymous", action="store_true",
                   help="also accept unauthenticated requests (always on without --tls: kubectl "
                        "does not send bearer tokens over plain HTTP)")
    p.add_argument("--objects", action="append", default=[], metavar="FILE.yaml",
                   help="Services/Endpoints/EndpointSlices (or kubectl -o yaml Lists) to serve")
    p.add_argument("--wso2", action="store_true", help="add the sample WSO2 cluster")
    p.add_argument("--populate", type=int, default=0, metavar="N", help="add N generated Services")
    p.add_argument("--endpoints", type=int, default=10, help="endpoints per generated Service")
    p.add_argument("--no-endpointslices", action="store_true", help="do not serve discovery.k8s.io")
    p.add_argument("--no-events-v1", action="store_true",
                   help="do not serve events.k8s.io (only core v1 Events, as before Kubernetes 1.19)")
    p.add_argument("--forbid-events", action="store_true", help="answer 403 to every Events request")
    p.add_argument("--churn", type=float, default=0, metavar="SECONDS",
                   help="move the global resourceVersion on every SECONDS with nothing changing "
                        "(as node leases and Events do in a real cluster)")
    p.add_argument("--dir", default=None, help="where to write certs and kubeconfig")
    return p


def main(argv: "list[str] | None" = None) -> int:
    args = _parser().parse_args(argv)
    workdir = args.dir or tempfile.mkdtemp(prefix="fake-kube-")
    os.makedirs(workdir, exist_ok=True)
    tls = generate(os.path.join(workdir, "pki")) if args.tls else None
    api = FakeKubeApi(tls=tls, tokens=[args.token], anonymous=args.anonymous or not args.tls, host=args.host,
                      port=args.port, serve_endpointslices=not args.no_endpointslices,
                      serve_events_v1=not args.no_events_v1)
    if args.forbid_events:
        api.deny("events")
    for path in args.objects:
        with open(path) as f:
            api.load_objects(yaml.safe_load_all(f))
    if args.wso2:
        wso2_cluster(api)
    if args.populate:
        api.populate(args.populate, args.endpoints, namespaces=["bench-%d" % i for i in range(10)])
    api.start()
    if args.churn:
        api.churn(args.churn)
    kubeconfig = api.write_kubeconfig(os.path.join(workdir, "kubeconfig"), token=args.token)
    print("fake API serving on %s" % api.url)
    print("kubectl --kubeconfig %s get services,endpointslices -A" % kubeconfig, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
