"""The documentation cannot drift from the code: docs/settings.md's table is generated."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "gen_settings_doc.py")


def _generator():
    spec = importlib.util.spec_from_file_location("gen_settings_doc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_doc_is_up_to_date():
    gen = _generator()
    with open(gen.DOC, encoding="utf-8") as f:
        text = f.read()
    assert gen.current_table(text) == gen.table(), (
        "docs/settings.md is out of date with lbsync/settings/fields.py: run "
        "`python scripts/gen_settings_doc.py` and commit the result")


def test_settings_doc_lists_every_flag_env_var_and_yaml_key():
    from lbsync import settings
    gen = _generator()
    with open(gen.DOC, encoding="utf-8") as f:
        table = gen.current_table(f.read())
    for flag, env, _default, _help in settings.reference():
        key = flag[2:].replace("-", "_")
        assert f"`{flag}`" in table and f"`{env}`" in table and f"`{key}`" in table


def test_generator_only_touches_the_text_between_the_markers():
    gen = _generator()
    text = f"intro\n{gen.BEGIN}\nstale | table\n{gen.END}\noutro\n"
    new = gen.rewrite(text)
    assert new.startswith(f"intro\n{gen.BEGIN}\n| flag |") and new.endswith(f"{gen.END}\noutro\n")
    assert gen.current_table(new) == gen.table()


def test_example_settings_file_is_a_valid_settings_file():
    from lbsync import settings
    s = settings.load(config_file=os.path.join(ROOT, "examples", "lbsync.yaml"), env={})
    assert s.source == "examples/cluster.yaml" and s.haproxy_config == "/tmp/haproxy.cfg"
    for bind in (s.http_bind, s.https_bind, s.stats_bind):
        assert bind.startswith("127.0.0.1:")  # the example listens on loopback only
    assert s.tcp_bind_address == "127.0.0.1" and s.tls_cert
