"""The `haproxy` marker (tests/conftest.py) picks what the second HAProxy version runs."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = "tests/unit/test_docs.py"
CHECK = "tests/integration/test_haproxy_check.py"


def selected(record_lines, tmp_path):
    """Node ids `pytest -m haproxy` collects from DOCS and CHECK, given a leg-1 record."""
    record = tmp_path / "record"
    record.write_text("".join(line + "\n" for line in record_lines))
    env = {**os.environ, "TEST_HAPROXY_RECORD": str(record)}
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-m", "haproxy", DOCS, CHECK], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120).stdout
    return {line for line in out.splitlines() if "::" in line}


def test_modules_using_the_haproxy_helpers_and_recorded_tests_are_selected(tmp_path):
    recorded = f"{DOCS}::test_settings_doc_is_up_to_date"
    got = selected([recorded], tmp_path)
    assert recorded in got
    assert not {n for n in got if n.startswith(DOCS)} - {recorded}  # the rest of DOCS runs once
    assert len([n for n in got if n.startswith(CHECK)]) >= 5  # every test of the helper module


def test_without_a_record_only_the_helper_modules_are_selected(tmp_path):
    got = selected([], tmp_path)
    assert got and all(n.startswith(CHECK) for n in got)
