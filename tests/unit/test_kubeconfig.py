"""lbsync.kube.credentials: kubeconfig variants, merging, exec plugins, in-cluster, redaction."""
from __future__ import annotations

import base64
import json
import os
import stat
import sys
import textwrap
import time
from typing import Any, Dict

import pytest
import yaml

from lbsync.exceptions import CredentialsError
from lbsync.kube import credentials
from lbsync.kube.auth import TokenFileAuth
from lbsync.kube.execplugin import parse_timestamp

SECRET = "s3cr3t-token-do-not-print"


def write(path: Any, doc: Any) -> str:
    path = str(path)
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def config(server: str = "https://10.1.2.3:6443", cluster: Dict[str, Any] = None,
           user: Dict[str, Any] = None, context: str = "ctx", namespace: str = "") -> Dict[str, Any]:
    ctx: Dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        ctx["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "c", "cluster": dict({"server": server}, **(cluster or {}))}],
            "users": [{"name": "u", "user": user or {}}],
            "contexts": [{"name": context, "context": ctx}]}


@pytest.fixture
def env(tmp_path):
    """An environment with no KUBECONFIG, no in-cluster variables and an empty HOME."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "")}


# -- static credentials ---------------------------------------------------------------------
def test_token_and_ca_file_relative_to_kubeconfig(tmp_path, env):
    (tmp_path / "pki").mkdir()
    write(tmp_path / "pki" / "ca.crt", "CA PEM")
    path = write(tmp_path / "kc", config(cluster={"certificate-authority": "pki/ca.crt"},
                                         user={"token": SECRET}, namespace="wso2"))
    creds = credentials.load(path, env=env)
    assert creds.server == "https://10.1.2.3:6443"
    assert creds.ca_file == str(tmp_path / "pki" / "ca.crt")
    assert creds.token() == SECRET and creds.auth_kind == "token"
    assert creds.cert() is None and creds.namespace == "wso2" and not creds.insecure


def test_token_file_wins_and_is_reread(tmp_path, env):
    write(tmp_path / "tok", SECRET + "\n")
    path = write(tmp_path / "kc", config(user={"token": "inline", "tokenFile": "tok"}))
    creds = credentials.load(path, env=env)
    assert creds.auth_kind == "token-file" and creds.token() == SECRET
    write(tmp_path / "tok", "rotated")
    assert creds.refresh() is True
    assert creds.token() == "rotated"


def test_token_file_checked_at_most_every_few_seconds(tmp_path):
    now = [100.0]
    write(tmp_path / "tok", "one")
    auth = TokenFileAuth(str(tmp_path / "tok"), check_every=3.0, clock=lambda: now[0])
    assert auth.token() == "one"
    write(tmp_path / "tok", "two-longer")
    now[0] += 1
    assert auth.token() == "one"  # not re-checked yet
    now[0] += 3
    assert auth.token() == "two-longer"
    os.unlink(str(tmp_path / "tok"))  # mid-rotation: keep the last good token
    now[0] += 5
    assert auth.token() == "two-longer"


def test_client_cert_files_and_insecure_and_server_name(tmp_path, env):
    write(tmp_path / "c.crt", "CERT")
    write(tmp_path / "c.key", "KEY")
    path = write(tmp_path / "kc", config(cluster={"insecure-skip-tls-verify": True, "tls-server-name": "api.local"},
                                         user={"client-certificate": "c.crt", "client-key": "c.key"}))
    creds = credentials.load(path, env=env)
    assert creds.cert() == (str(tmp_path / "c.crt"), str(tmp_path / "c.key"))
    assert creds.insecure and creds.ca_file is None and creds.tls_server_name == "api.local"
    assert creds.auth_kind == "client-cert" and creds.token() is None


def test_inline_data_goes_to_private_files(tmp_path, env):
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    path = write(tmp_path / "kc", config(cluster={"certificate-authority-data": b64("CA DATA")},
                                         user={"client-certificate-data": b64("CERT DATA"),
                                               "client-key-data": b64("KEY DATA")}))
    creds = credentials.load(path, env=env)
    cert, key = creds.cert()
    for file, content in ((creds.ca_file, "CA DATA"), (cert, "CERT DATA"), (key, "KEY DATA")):
        with open(file) as f:
            assert f.read() == content
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode) == 0o700


@pytest.mark.parametrize("cluster, user, fragment", [
    ({}, {"username": "admin", "password": SECRET}, "basic auth (username/password)"),
    ({}, {"auth-provider": {"name": "gcp"}}, "auth-provider 'gcp'"),
    ({}, {"client-certificate": "missing.crt", "client-key": "missing.key"}, "client-certificate"),
    ({"certificate-authority-data": "!!!notbase64"}, {}, "certificate-authority-data is not valid base64"),
    ({"certificate-authority-data": "Q0E=", "insecure-skip-tls-verify": True}, {}, "choose one"),
    ({"server": ""}, {}, "has no server"),
])
def test_invalid_kubeconfigs_name_file_and_problem(tmp_path, env, cluster, user, fragment):
    path = write(tmp_path / "kc", config(cluster=cluster, user=user))
    with pytest.raises(CredentialsError) as info:
        credentials.load(path, env=env)
    assert fragment in str(info.value) and path in str(info.value)
    assert SECRET not in str(info.value)


def test_cert_without_key_is_rejected(tmp_path, env):
    write(tmp_path / "c.crt", "CERT")
    path = write(tmp_path / "kc", config(user={"client-certificate": "c.crt"}))
    with pytest.raises(CredentialsError, match="must be given together"):
        credentials.load(path, env=env)


# -- files, contexts, merging ---------------------------------------------------------------
def test_missing_file_and_missing_context(tmp_path, env):
    with pytest.raises(CredentialsError, match="no such file") as info:
        credentials.load(str(tmp_path / "nope"), env=env)
    assert str(tmp_path / "nope") in str(info.value)
    path = write(tmp_path / "kc", config())
    with pytest.raises(CredentialsError, match=r"context 'other' not found \(available: ctx\)"):
        credentials.load(path, "other", env=env)
    doc = config()
    doc["current-context"] = ""
    with pytest.raises(CredentialsError, match="no current-context"):
        credentials.load(write(tmp_path / "kc2", doc), env=env)


def test_context_choice(tmp_path, env):
    doc = config(user={"token": "a"})
    doc["clusters"].append({"name": "c2", "cluster": {"server": "https://second:443"}})
    doc["contexts"].append({"name": "two", "context": {"cluster": "c2", "user": "u", "namespace": "ns2"}})
    path = write(tmp_path / "kc", doc)
    assert credentials.load(path, env=env).server == "https://10.1.2.3:6443"
    creds = credentials.load(path, "two", env=env)
    assert creds.server == "https://second:443" and creds.namespace == "ns2"
    doc["contexts"].append({"name": "bad", "context": {"cluster": "nope", "user": "u"}})
    with pytest.raises(CredentialsError, match="cluster 'nope', which is not defined"):
        credentials.load(write(tmp_path / "kc", doc), "bad", env=env)


def test_kubeconfig_env_merges_first_wins(tmp_path, env):
    first = config(server="https://first:6443", user={"token": "first"}, context="shared")
    first["clusters"][0]["name"] = "c"
    second = config(server="https://second:6443", user={"token": "second"}, context="shared")
    second["contexts"].append({"name": "only-second", "context": {"cluster": "c2", "user": "u"}})
    second["clusters"].append({"name": "c2", "cluster": {"server": "https://c2:6443"}})
    second["current-context"] = "only-second"
    a, b = write(tmp_path / "a", first), write(tmp_path / "b", second)
    env["KUBECONFIG"] = ":".join([str(tmp_path / "missing"), a, "", b])
    creds = credentials.load(env=env)
    assert creds.server == "https://first:6443" and creds.token() == "first"
    creds = credentials.load(context="only-second", env=env)
    assert creds.server == "https://c2:6443" and creds.token() == "first"  # user "u" from the first file
    env["KUBECONFIG"] = str(tmp_path / "missing")
    with pytest.raises(CredentialsError, match="none of"):
        credentials.load(env=env)


def test_precedence(tmp_path, env):
    explicit = write(tmp_path / "explicit", config(server="https://explicit:1"))
    listed = write(tmp_path / "listed", config(server="https://listed:1"))
    home_kube = tmp_path / "home" / ".kube"
    home_kube.mkdir()
    write(home_kube / "config", config(server="https://home:1"))
    sa = tmp_path / "sa"
    sa.mkdir()
    write(sa / "token", SECRET)
    write(sa / "ca.crt", "CA")
    env.update(KUBERNETES_SERVICE_HOST="10.96.0.1", KUBERNETES_SERVICE_PORT="443", KUBECONFIG=listed)
    load = lambda *a, **kw: credentials.load(*a, env=env, incluster_dir=str(sa), **kw)  # noqa: E731
    assert load(explicit).server == "https://explicit:1"
    assert load().server == "https://listed:1"
    del env["KUBECONFIG"]
    assert load().server == "https://10.96.0.1:443"
    assert load(context="ctx").server == "https://home:1"  # --context means a kubeconfig
    del env["KUBERNETES_SERVICE_HOST"]
    assert load().server == "https://home:1"
    os.unlink(str(home_kube / "config"))
    with pytest.raises(CredentialsError, match="no Kubernetes credentials found"):
        load()


def test_yaml_error_does_not_quote_the_token(tmp_path, env):
    path = write(tmp_path / "kc", "users:\n- name: u\n  user:\n    token: %s\n  : [unbalanced\n" % SECRET)
    with pytest.raises(CredentialsError) as info:
        credentials.load(path, env=env)
    assert "not valid YAML at line" in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(CredentialsError, match="not a mapping"):
        credentials.load(write(tmp_path / "list", "- a\n- b\n"), env=env)


def test_repr_redacts_token(tmp_path, env):
    creds = credentials.load(write(tmp_path / "kc", config(user={"token": SECRET})), env=env)
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    assert "auth=token" in repr(creds)


# -- in-cluster -----------------------------------------------------------------------------
def test_in_cluster(tmp_path):
    write(tmp_path / "token", SECRET + "\n")
    write(tmp_path / "ca.crt", "CA")
    write(tmp_path / "namespace", "lb\n")
    creds = credentials.in_cluster(str(tmp_path), env={"KUBERNETES_SERVICE_HOST": "fd00::1",
                                                      "KUBERNETES_SERVICE_PORT": "6443"})
    assert creds.server == "https://[fd00::1]:6443" and creds.token() == SECRET
    assert creds.ca_file == str(tmp_path / "ca.crt") and creds.namespace == "lb"
    assert creds.auth_kind == "token-file" and SECRET not in repr(creds)
    os.unlink(str(tmp_path / "ca.crt"))
    with pytest.raises(CredentialsError, match="CA file .*ca.crt does not exist"):
        credentials.in_cluster(str(tmp_path), env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})


def test_in_cluster_empty_token(tmp_path):
    write(tmp_path / "token", "")
    write(tmp_path / "ca.crt", "CA")
    with pytest.raises(CredentialsError, match="token file .*token is empty"):
        credentials.in_cluster(str(tmp_path), env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})


# -- exec plugins ---------------------------------------------------------------------------
PLUGIN = textwrap.dedent('''\
    import json, os, sys, time
    state = sys.argv[1]
    runs = int(open(state).read()) + 1 if os.path.exists(state) else 1
    open(state, "w").write(str(runs))
    info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
    open(state + ".info", "w").write(json.dumps({"info": info, "region": os.environ.get("REGION")}))
    if os.environ.get("FAIL"):
        sys.stderr.write("plugin: login required\\n")
        sys.exit(3)
    ttl = float(sys.argv[2])
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + ttl))
    status = {"token": "exec-token-%d" % runs, "expirationTimestamp": expiry}
    print(json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}))
''')


def exec_config(tmp_path, ttl: float, api_version: str = "client.authentication.k8s.io/v1",
                **extra: Any) -> str:
    script = write(tmp_path / "plugin.py", PLUGIN)
    spec = dict({"apiVersion": api_version, "command": sys.executable,
                 "args": [script, str(tmp_path / "state"), str(ttl)],
                 "env": [{"name": "REGION", "value": "eu-west-1"}], "interactiveMode": "Never",
                 "provideClusterInfo": True}, **extra)
    return write(tmp_path / "kc", config(user={"exec": spec}))


def runs(tmp_path) -> int:
    return int((tmp_path / "state").read_text())


@pytest.mark.parametrize("api_version", ["client.authentication.k8s.io/v1",
                                         "client.authentication.k8s.io/v1beta1"])
def test_exec_plugin_cached_until_expiry(tmp_path, env, api_version):
    creds = credentials.load(exec_config(tmp_path, 3600, api_version), env=env)
    assert creds.auth_kind == "exec"
    assert creds.token() == "exec-token-1" and creds.token() == "exec-token-1"
    assert runs(tmp_path) == 1
    seen = json.loads((tmp_path / "state.info").read_text())
    assert seen["region"] == "eu-west-1"
    assert seen["info"]["kind"] == "ExecCredential" and seen["info"]["apiVersion"] == api_version
    assert seen["info"]["spec"]["cluster"]["server"] == "https://10.1.2.3:6443"
    assert creds.refresh() and creds.token() == "exec-token-2"  # e.g. after a 401
    assert SECRET not in repr(creds) and "exec-token" not in repr(creds)


def test_exec_plugin_rerun_when_expired(tmp_path, env):
    creds = credentials.load(exec_config(tmp_path, 2), env=env)  # inside the expiry skew
    assert creds.token() == "exec-token-1"
    assert creds.token() == "exec-token-2"


def test_exec_plugin_failure_shows_stderr_not_stdout(tmp_path, env):
    env["FAIL"] = "1"
    creds = credentials.load(exec_config(tmp_path, 3600), env=env)
    with pytest.raises(CredentialsError, match="exited with status 3: plugin: login required"):
        creds.token()


def test_exec_plugin_missing_command_and_bad_version(tmp_path, env):
    path = exec_config(tmp_path, 60, command="/nonexistent/aws-iam-authenticator",
                       installHint="install aws-iam-authenticator")
    with pytest.raises(CredentialsError, match="not found: install aws-iam-authenticator"):
        credentials.load(path, env=env).token()
    with pytest.raises(CredentialsError, match="apiVersion .* is not supported"):
        credentials.load(exec_config(tmp_path, 60, "client.authentication.k8s.io/v1alpha1"), env=env)


def test_exec_plugin_client_certificate(tmp_path, env):
    out = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
           "status": {"clientCertificateData": "CERT PEM", "clientKeyData": "KEY PEM"}}
    script = write(tmp_path / "p.py", "print(%r)" % json.dumps(out))
    path = write(tmp_path / "kc", config(user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [script],
        "interactiveMode": "IfAvailable"}}))
    creds = credentials.load(path, env=env)
    cert, key = creds.cert()
    assert open(cert).read() == "CERT PEM" and open(key).read() == "KEY PEM"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and creds.token() is None


def test_exec_plugin_garbage_output(tmp_path, env):
    script = write(tmp_path / "p.py", "print('token=%s')" % SECRET)
    path = write(tmp_path / "kc", config(user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [script]}}))
    with pytest.raises(CredentialsError, match="not JSON") as info:
        credentials.load(path, env=env).token()
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("2024-01-02T03:04:05Z", 1704164645.0),
    ("2024-01-02T03:04:05.123456789Z", 1704164645.123456),
    ("2024-01-02T04:04:05+01:00", 1704164645.0),
    ("2024-01-02T03:04:05.5Z", 1704164645.5),
])
def test_parse_timestamp(text, expected):
    assert parse_timestamp(text) == pytest.approx(expected)
    assert time.time() > 0
