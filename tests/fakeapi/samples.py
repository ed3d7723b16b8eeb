"""Sample clusters for the fake API: a small WSO2-like cluster for examples and kubectl runs."""
from __future__ import annotations

from tests.fakeapi.server import FakeKubeApi


def add_control_plane(api: FakeKubeApi) -> None:
    """default/kubernetes (no selector, Endpoints point at the apiserver) and kube-system/kube-dns."""
    api.add_service("kubernetes", "default", [("https", 443, 6443)], selector={},
                    cluster_ip="10.96.0.1", labels={"component": "apiserver", "provider": "kubernetes"})
    api.set_endpoints("default", "kubernetes", ready=[{"ip": "192.168.49.2", "pod": "kube-apiserver",
                                                       "node": "control-plane"}])
    api.add_service("kube-dns", "kube-system", [("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP"),
                                                ("metrics", 9153)],
                    selector={"k8s-app": "kube-dns"}, cluster_ip="10.96.0.10",
                    labels={"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
                    annotations={"prometheus.io/port": "9153", "prometheus.io/scrape": "true"})
    api.set_endpoints("kube-system", "kube-dns", ready=["10.244.0.2", "10.244.0.3"])


def add_wso2(api: FakeKubeApi) -> None:
    """WSO2 API Manager, its analytics worker and MySQL in namespace wso2."""
    labels = {"app.kubernetes.io/part-of": "wso2am", "deployment": "wso2am"}
    api.add_service("wso2am", "wso2", [
        ("servlet-https", 9443), ("servlet-http", 9763), ("pass-through-https", 8243),
        ("pass-through-http", 8280), ("binary", 7611), ("binary-secure", 7711)],
        labels=dict(labels, app="wso2am"), selector={"deployment": "wso2am"}, type="NodePort")
    api.set_endpoints("wso2", "wso2am", ready=["10.244.1.17", "10.244.2.9"], not_ready=["10.244.3.4"])
    api.add_service("wso2am-analytics-worker", "wso2", [("thrift", 7612), ("thrift-ssl", 7712),
                                                         ("rest-api", 9444), ("http", 9091)],
                    labels=dict(labels, app="wso2am-analytics-worker"),
                    selector={"deployment": "wso2am-analytics-worker"})
    api.set_endpoints("wso2", "wso2am-analytics-worker", ready=["10.244.2.14"])
    api.add_service("wso2am-mysql", "wso2", [("mysql", 3306)], labels={"app": "wso2am-mysql"},
                    selector={"app": "wso2am-mysql"})
    api.set_endpoints("wso2", "wso2am-mysql", ready=["10.244.1.5"], terminating=["10.244.3.8"])


def wso2_cluster(api: FakeKubeApi) -> FakeKubeApi:
    add_control_plane(api)
    add_wso2(api)
    return api
