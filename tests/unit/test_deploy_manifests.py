"""deploy/kubernetes and the Dockerfile: they parse, and they agree with lbsync and with each other.

No cluster is needed: the manifests are read as YAML and checked for what a wrong edit
would silently break (RBAC wider than read-only, a flag lbsync does not have, a path
that one container writes and another never sees, ports the ConfigMap does not bind).
"""
import os
import re
import shlex

import pytest
import yaml

from lbsync import cli, settings, sync

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KDIR = os.path.join(ROOT, "deploy", "kubernetes")
MANIFESTS = ("rbac.yaml", "rbac-namespaced.yaml", "deployment.yaml", "daemonset.yaml")
LBSYNC_IMAGE = "ghcr.io/example/lbsync:0.1.0"
LB_LABEL = "lbsync.example.com/load-balancer"
READ_ONLY = {"get", "list", "watch"}
WANTED_RESOURCES = {("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices")}
EVENT_GROUPS = ("", "events.k8s.io")  # core v1 where events.k8s.io/v1 is not served (before 1.19)
EVENT_WRITES = {"create", "patch"}  # a new Event, then its series (docs/security.md)
NODES = {("", "nodes")}  # cluster-scoped; read only in backend mode nodeport
ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def load(name):
    with open(os.path.join(KDIR, name), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def only(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(name="deployment.yaml", kind="Deployment"):
    return only(load(name), kind)["spec"]["template"]["spec"]


def containers(spec):
    return {c["name"]: c for c in spec["containers"]}


def all_containers(spec):
    return list(spec.get("initContainers", [])) + list(spec["containers"])


@pytest.fixture(scope="module")
def spec():
    return pod_spec()


@pytest.fixture(scope="module")
def settings_file(tmp_path_factory):
    """The ConfigMap's lbsync.yaml, written out so that lbsync.settings can load it."""
    cm = only(load("deployment.yaml"), "ConfigMap")
    path = tmp_path_factory.mktemp("cm") / "lbsync.yaml"
    path.write_text(cm["data"]["lbsync.yaml"])
    return str(path)


@pytest.fixture(scope="module")
def cm_settings(settings_file):
    return settings.load(config_file=settings_file, env={})


def mounts(container):
    return {m["name"]: m for m in container.get("volumeMounts", [])}


def mount_of(container, path):
    """The volumeMount whose mountPath holds `path` (longest match), or None."""
    best = None
    for m in container.get("volumeMounts", []):
        root = m["mountPath"].rstrip("/")
        if (path == root or path.startswith(root + "/")) and (best is None or len(root) > len(best["mountPath"])):
            best = m
    return best


def expand(container, args):
    """$(VAR) as the kubelet expands it, with a made-up value for each env var of the container."""
    env = {e["name"]: "10.11.12.13" for e in container.get("env", [])}
    out = []
    for arg in args:
        for var in ENV_REF.findall(arg):
            assert var in env, f"{container['name']}: $({var}) in args but no env var {var}"
        out.append(ENV_REF.sub(lambda m: env[m.group(1)], arg))
    return out


def container_env(container):
    """The container's LBSYNC_* variables, $(VAR) expanded as the kubelet does."""
    names = [e["name"] for e in container.get("env", [])]
    out = {}
    for e in container.get("env", []):
        if not e["name"].startswith(settings.ENV_PREFIX):
            continue
        value = e["value"]
        for var in ENV_REF.findall(value):
            assert var in names[:names.index(e["name"])], f"$({var}) must be defined before {e['name']}"
        out[e["name"]] = ENV_REF.sub("10.11.12.13", value)
    return out


def effective(container, settings_file):
    """What lbsync in this container runs with: ConfigMap < LBSYNC_* env < flags."""
    ns = cli.parser().parse_args(expand(container, container.get("args", [])))  # SystemExit: unknown flag
    return settings.load(args=ns, config_file=settings_file, env=container_env(container))


def lbsync_containers(spec):
    return [c for c in all_containers(spec) if c["image"] == LBSYNC_IMAGE and "command" not in c]


# --- every file


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_manifest_parses_and_every_document_has_a_kind_and_a_name(name):
    docs = load(name)
    assert docs
    for d in docs:
        assert d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), d.get("kind")


def test_the_expected_kinds_are_in_each_file():
    kinds = {name: sorted(d["kind"] for d in load(name)) for name in MANIFESTS}
    assert kinds == {
        "rbac.yaml": ["ClusterRole", "ClusterRoleBinding", "Namespace", "ServiceAccount"],
        "rbac-namespaced.yaml": ["ClusterRole", "ClusterRoleBinding", "Namespace", "Role", "RoleBinding",
                                 "ServiceAccount"],
        "deployment.yaml": ["ConfigMap", "Deployment", "Namespace"],
        "daemonset.yaml": ["ConfigMap", "DaemonSet", "Namespace"],
    }


def test_no_other_yaml_files_escape_these_tests():
    present = sorted(f for f in os.listdir(KDIR) if f.endswith((".yaml", ".yml")))
    assert present == sorted(MANIFESTS)


@pytest.mark.parametrize("name", MANIFESTS)
def test_namespaced_objects_live_in_lbsync(name):
    for d in load(name):
        if d["kind"] in ("ServiceAccount", "ConfigMap", "Deployment", "DaemonSet"):
            assert d["metadata"]["namespace"] == "lbsync", d["kind"]


# --- RBAC: read-only, exactly three resources (and cluster-scoped Nodes, for nodeport mode)


@pytest.mark.parametrize("name,kind,reads,events", [
    ("rbac.yaml", "ClusterRole", WANTED_RESOURCES | NODES, True),
    ("rbac-namespaced.yaml", "Role", WANTED_RESOURCES, True),
    ("rbac-namespaced.yaml", "ClusterRole", NODES, False)])  # Nodes are cluster-scoped: no Role grants them
def test_rbac_grants_exactly_reads_of_services_endpoints_and_nodes_and_event_writes(name, kind, reads, events):
    role = only(load(name), kind)
    granted = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames, nonResourceURLs
        assert len(set(rule["verbs"])) == len(rule["verbs"]), rule
        assert "*" not in rule["apiGroups"] and "*" not in rule["resources"] and "*" not in rule["verbs"]
        granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    wanted = {(g, r, v) for g, r in reads for v in READ_ONLY}
    writes = {(g, "events", v) for g in EVENT_GROUPS for v in EVENT_WRITES} if events else set()
    assert granted == wanted | writes  # nothing more: no update, delete, or any other resource


@pytest.mark.parametrize("name,binding,role", [("rbac.yaml", "ClusterRoleBinding", "ClusterRole"),
                                               ("rbac-namespaced.yaml", "RoleBinding", "Role"),
                                               ("rbac-namespaced.yaml", "ClusterRoleBinding", "ClusterRole")])
def test_the_binding_gives_the_role_to_the_lbsync_service_account(name, binding, role):
    docs = load(name)
    b, r, sa = only(docs, binding), only(docs, role), only(docs, "ServiceAccount")
    assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role, "name": r["metadata"]["name"]}
    assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                              "namespace": sa["metadata"]["namespace"]}]
    assert (sa["metadata"]["name"], sa["metadata"]["namespace"]) == ("lbsync", "lbsync")
    if role == "ClusterRole":  # cluster-scoped: a namespace there would be ignored, and misleading
        assert "namespace" not in r["metadata"] and "namespace" not in b["metadata"]
    if role == "Role":
        assert b["metadata"]["namespace"] == r["metadata"]["namespace"] != "lbsync"


def test_the_pods_use_the_service_account_that_rbac_yaml_binds():
    sa = only(load("rbac.yaml"), "ServiceAccount")["metadata"]["name"]
    assert pod_spec()["serviceAccountName"] == sa
    assert pod_spec("daemonset.yaml", "DaemonSet")["serviceAccountName"] == sa


# --- the Deployment


def test_deployment_runs_one_replica_and_recreates_because_of_host_ports():
    d = only(load("deployment.yaml"), "Deployment")
    assert d["spec"]["replicas"] == 1
    assert d["spec"]["strategy"]["type"] == "Recreate"
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_pod_has_haproxy_and_lbsync_containers_and_an_init_container_running_once(spec):
    assert sorted(containers(spec)) == ["haproxy", "lbsync"]
    once = [c for c in spec["initContainers"] if "--once" in c.get("args", [])]
    assert len(once) == 1 and once[0]["image"] == LBSYNC_IMAGE
    assert "--dry-run" not in once[0]["args"]
    # the error pages are in place before the config that names them is rendered
    names = [c["name"] for c in spec["initContainers"]]
    assert names.index(once[0]["name"]) == len(names) - 1


def test_shared_config_volume_is_an_emptydir_mounted_in_every_container_at_the_same_path(spec, cm_settings):
    vols = {v["name"]: v for v in spec["volumes"]}
    where = {c["name"]: mount_of(c, cm_settings.haproxy_config) for c in all_containers(spec)}
    assert all(where.values()), where
    assert {m["name"] for m in where.values()} == {"haproxy-config"}
    assert {m["mountPath"] for m in where.values()} == {"/etc/haproxy"}
    assert "emptyDir" in vols["haproxy-config"]
    # HAProxy only reads its config; lbsync and the init containers write it
    assert where["haproxy"].get("readOnly") is True
    assert not where["lbsync"].get("readOnly") and not where["render-config"].get("readOnly")


def test_haproxy_runs_in_master_worker_mode_on_the_shared_config_with_a_private_master_socket(spec, settings_file):
    cmd = containers(spec)["haproxy"]["command"]
    assert cmd[0] == "haproxy" and "-W" in cmd and "-db" in cmd
    daemon = effective(containers(spec)["lbsync"], settings_file)
    assert cmd[cmd.index("-f") + 1] == daemon.haproxy_config
    sock, *options = cmd[cmd.index("-S") + 1].split(",")
    assert dict(zip(options[::2], options[1::2])) == {"mode": "600"}
    assert daemon.master_socket == sock


def test_sockets_live_on_a_volume_shared_by_haproxy_and_lbsync(spec, settings_file):
    c = containers(spec)
    daemon = effective(c["lbsync"], settings_file)
    for path in (daemon.master_socket, daemon.runtime_socket):
        assert path
        m_h, m_l = mount_of(c["haproxy"], path), mount_of(c["lbsync"], path)
        assert m_h and m_l and m_h["name"] == m_l["name"] == "haproxy-run" and m_h["mountPath"] == m_l["mountPath"]
        assert not m_h.get("readOnly")


def test_init_container_does_not_reload_a_haproxy_that_is_not_running_yet(spec, settings_file):
    render = [c for c in spec["initContainers"] if "--once" in c.get("args", [])][0]
    once = effective(render, settings_file)
    assert once.master_socket is None and once.pidfile is None and once.reload_cmd is None
    # but it renders the same file the daemon will: everything that shapes haproxy.cfg
    # (the runtime socket's `stats socket` line included) comes from the ConfigMap alone
    daemon = effective(containers(spec)["lbsync"], settings_file)
    assert once.runtime_socket and sync.frame_from(once) == sync.frame_from(daemon)
    assert once.errors_dir == daemon.errors_dir and once.template == daemon.template


def test_error_pages_are_copied_to_the_errors_dir_haproxy_reads(spec, cm_settings):
    copier = [c for c in spec["initContainers"] if c.get("command")]
    assert len(copier) == 1
    cmd = copier[0]["command"]
    assert cmd[:2] == ["cp", "-RT"]
    # where pip puts setup.cfg's data_files in the python image (sys.prefix /usr/local)
    assert cmd[2] == "/usr/local/share/lbsync/errors"
    with open(os.path.join(ROOT, "setup.cfg"), encoding="utf-8") as f:
        assert "share/lbsync/errors" in f.read()
    assert cmd[3] == cm_settings.errors_dir
    assert mount_of(copier[0], cmd[3])["name"] == mount_of(containers(spec)["haproxy"], cmd[3])["name"]


def test_haproxy_has_host_ports_80_and_443_mapped_to_the_ports_lbsync_binds(spec, cm_settings):
    ports = {p["name"]: p for p in containers(spec)["haproxy"]["ports"]}
    assert {p["hostPort"] for p in ports.values() if "hostPort" in p} == {80, 443}
    assert ports["http"]["hostPort"] == 80 and ports["https"]["hostPort"] == 443
    assert ports["http"]["containerPort"] == int(cm_settings.http_bind.rsplit(":", 1)[1])
    assert ports["https"]["containerPort"] == int(cm_settings.https_bind.rsplit(":", 1)[1])
    assert all(p.get("protocol", "TCP") == "TCP" for p in ports.values())
    assert not spec.get("hostNetwork")


def test_node_affinity_pins_the_pod_to_labelled_nodes_and_tolerates_their_taint(spec):
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": LB_LABEL, "operator": "In", "values": ["true"]}]}]
    assert any(t["key"] == LB_LABEL and t["effect"] == "NoSchedule" for t in spec["tolerations"])


def test_lbsync_has_liveness_and_readiness_probes_on_its_metrics_port(spec, settings_file):
    c = containers(spec)["lbsync"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        port = probe["httpGet"]["port"]
        assert ports.get(port, port) == 9102
    metrics_bind = effective(c, settings_file).metrics_bind
    assert metrics_bind == "10.11.12.13:9102"  # the Pod IP, as the kubelet's probes reach it


def test_haproxy_has_probes_on_its_http_port(spec):
    c = containers(spec)["haproxy"]
    for probe in ("livenessProbe", "readinessProbe"):
        check = c[probe].get("tcpSocket") or c[probe].get("httpGet")
        assert check and check["port"] in ("http", 8080)


def test_every_container_has_resource_requests_and_limits(spec):
    for c in all_containers(spec):
        res = c["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]), c["name"]
        assert "memory" in res["limits"], c["name"]


def test_no_container_runs_as_root_or_keeps_capabilities(spec):
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0 and pod["fsGroup"] != 0
    for c in all_containers(spec):
        sc = c["securityContext"]
        assert sc.get("runAsNonRoot", pod["runAsNonRoot"]) is True, c["name"]
        assert sc.get("runAsUser", pod["runAsUser"]) not in (0, None), c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert not sc.get("privileged"), c["name"]
    assert not spec.get("hostPID") and not spec.get("hostIPC")


def test_haproxy_and_lbsync_run_as_one_user_so_the_mode_600_sockets_work(spec):
    pod = spec["securityContext"]
    uids = {c["name"]: c["securityContext"].get("runAsUser", pod["runAsUser"]) for c in spec["containers"]}
    assert uids["haproxy"] == uids["lbsync"] == 10001  # the lbsync image's USER


def test_images_are_pinned(spec):
    for c in all_containers(spec):
        repo, _, tag = c["image"].rpartition(":")
        assert repo and tag and tag != "latest", c["image"]
    haproxy_tag = containers(spec)["haproxy"]["image"]
    assert re.fullmatch(r"haproxy:\d+\.\d+\.\d+(-[a-z0-9]+)?", haproxy_tag), haproxy_tag


def test_tls_certificate_comes_read_only_from_a_secret_at_the_same_path_everywhere_it_is_loaded(spec, cm_settings):
    vols = {v["name"]: v for v in spec["volumes"]}
    cert = cm_settings.tls_cert
    loaders = [c for c in all_containers(spec) if c["name"] in ("render-config", "haproxy", "lbsync")]
    found = {(m["name"], m["mountPath"]) for m in (mount_of(c, cert) for c in loaders) if m and m.get("readOnly")}
    assert len(loaders) == 3 and len(found) == 1, found
    (volume, mount_path), = found
    secret = vols[volume]["secret"]
    rel = os.path.relpath(cert, mount_path)
    paths = {i["key"]: i["path"] for i in secret["items"]}
    # HAProxy finds the key in "<cert>.key" beside the certificate
    assert paths == {"tls.crt": rel, "tls.key": rel + ".key"}
    assert secret["defaultMode"] & 0o077 == 0o040  # group-readable (fsGroup), nobody else


def test_every_flag_and_variable_in_the_lbsync_containers_exists_and_the_merged_settings_are_valid(spec, settings_file):
    checked = 0
    for c in lbsync_containers(spec):
        ns = cli.parser().parse_args(expand(c, c.get("args", [])))  # SystemExit on an unknown flag
        assert ns.config == "/etc/lbsync/lbsync.yaml"
        assert mount_of(c, ns.config)["name"] == "settings"
        settings.from_env(container_env(c))  # SettingsError on an unknown LBSYNC_ name
        effective(c, settings_file)  # SettingsError on an invalid value
        checked += 1
    assert checked == 2  # render-config and lbsync


def test_the_configmap_settings_load_and_fit_the_pod(cm_settings):
    s = cm_settings
    assert s.log_format == "json" and s.haproxy_log == "stdout"
    assert s.haproxy_config == "/etc/haproxy/haproxy.cfg"
    assert s.runtime_socket and s.tls_cert and s.errors_dir
    assert s.source is None and s.kubeconfig is None  # in-cluster ServiceAccount


def test_the_settings_volume_is_the_configmap(spec):
    vols = {v["name"]: v for v in spec["volumes"]}
    cm = only(load("deployment.yaml"), "ConfigMap")
    assert vols["settings"]["configMap"]["name"] == cm["metadata"]["name"]
    assert "items" not in vols["settings"]["configMap"]  # whole ConfigMap: updates reach the Pod


# --- the DaemonSet variant


def test_daemonset_runs_the_same_pod_and_settings_as_the_deployment():
    dep, ds = load("deployment.yaml"), load("daemonset.yaml")
    assert only(ds, "DaemonSet")["spec"]["template"] == only(dep, "Deployment")["spec"]["template"]
    assert only(ds, "ConfigMap") == only(dep, "ConfigMap")
    assert only(ds, "DaemonSet")["spec"]["updateStrategy"]["type"] == "RollingUpdate"


# --- the image


def dockerfile_lines():
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        text = re.sub(r"\\\n", " ", f.read())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_dockerfile_base_images_are_pinned_to_a_concrete_tag():
    froms = [line.split()[1] for line in dockerfile_lines() if line.upper().startswith("FROM ")]
    assert froms
    for image in froms:
        assert "$" not in image
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name == "python" and re.fullmatch(r"\d+\.\d+\.\d+-slim-bookworm", tag), image


def test_dockerfile_runs_as_a_non_root_numeric_user_with_lbsync_as_entrypoint():
    lines = dockerfile_lines()
    users = [line.split(None, 1)[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] == "10001"
    entry = [line for line in lines if line.upper().startswith("ENTRYPOINT ")]
    assert entry[-1] == 'ENTRYPOINT ["lbsync"]'
    assert any("apt-get install" in line and "haproxy" in line for line in lines)


def test_dockerfile_holds_no_secrets():
    for line in dockerfile_lines():
        if line.upper().startswith(("ENV ", "ARG ")):
            assert not re.search(r"(?i)secret|token|passw|api_?key", line), line


def test_dockerignore_is_an_allow_list_without_git_or_credentials():
    with open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8") as f:
        rules = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = [r[1:] for r in rules if r.startswith("!")]
    assert "lbsync/" in allowed and "setup.cfg" in allowed
    assert not any(a.startswith((".git", ".venv", "tests", "deploy", "systemd")) for a in allowed)


def test_the_dockerfile_copies_everything_setup_cfg_needs():
    copied = set()
    for line in dockerfile_lines():
        if line.upper().startswith("COPY ") and "--from" not in line:
            copied |= {p.rstrip("/") for p in shlex.split(line)[1:-1]}
    assert {"pyproject.toml", "setup.cfg", "README.md", "lbsync", "templates", "errors"} <= copied


@pytest.mark.parametrize("name,kind", [("deployment.yaml", "Deployment"), ("daemonset.yaml", "DaemonSet")])
def test_lbsync_knows_its_pod_name_for_the_events_it_writes(name, kind):
    env = {e["name"]: e for e in containers(pod_spec(name, kind))["lbsync"].get("env", [])}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
