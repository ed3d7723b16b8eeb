"""The benchmark's live HAProxy only ever has servers on 127.0.0.0/8 (health checks are traffic).

Renders the latency benchmark's cluster with the very arguments benchmarks/run.py gives lbsync
in front of its real HAProxy, and reads every `server` line back.
"""
import ipaddress
import os
import re
import shutil

import pytest

from benchmarks import run, synth
from lbsync import cli
from tests.fakeapi.server import FakeKubeApi
from tests.helpers import loopback
from tests.helpers.haproxy_proc import HAProxyProcess

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
SERVER = re.compile(r"^\s+server \S+ \[?([0-9a-fA-F:.]+?)\]?:\d+", re.MULTILINE)


def test_synthetic_pods_and_changed_pods_are_on_loopback():
    addresses = [ip for *_, ips in synth.service_specs(5000) for ip in ips]
    assert len(addresses) == 50000 and len(set(addresses)) == 50000
    assert all(ipaddress.ip_address(ip) in LOOPBACK for ip in addresses)
    assert not {ip for ip in addresses if ip.startswith("127.0.0.")}  # the probe's real Pods


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy binary not installed")
@pytest.mark.parametrize("mode", ["runtime", "reload"])
def test_latency_benchmark_config_has_only_loopback_servers(tmp_path, mode):
    api = FakeKubeApi(anonymous=True)
    synth.populate(api, 100)
    synth.add_probe(api, 18181, ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    synth.change_one_endpoint(api, 100, step=7)
    with api:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"), auth="none")
        cfg = str(tmp_path / "haproxy.cfg")
        pem = run.self_signed(str(tmp_path))
        args = run.latency_args(kubeconfig, cfg, 18080, pem, HAProxyProcess(cfg, str(tmp_path)), mode)
        assert cli.main([*args, "--once", "--log-format", "json"]) == 0
    with open(cfg) as f:
        text = f.read()
    found = SERVER.findall(text)
    assert len(found) > 1000
    outside = loopback.outside(text)  # the rule HAProxyProcess enforces on every live config
    assert outside == [], f"servers outside 127.0.0.0/8 in the benchmark's config: {outside[:5]}"
