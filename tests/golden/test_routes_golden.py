"""Golden `lbsync routes` output for the bundled example and the real kubectl dump.

The command runs end to end (flags, settings, source, model, table); its JSON is parsed
back and must say what the table says. To regenerate after an intended change:
UPDATE_GOLDEN=1 pytest tests/golden/test_routes_golden.py, then review the diff like code.
"""
import json
import os

import pytest

from lbsync import cli

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES = {"example": os.path.join(ROOT, "examples", "cluster.yaml"),
         "kubectl-output": os.path.join(HERE, "kubectl-output", "cluster.yaml")}


def routes(capsys, source, *extra):
    code = cli.main(["routes", "--source", source, "--log-format", "json", *extra])
    out = capsys.readouterr().out
    assert code == 0
    return out


def golden(name, got):
    path = os.path.join(HERE, "_routes", name)
    if os.environ.get("UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(got)
    with open(path) as f:
        assert got == f.read()


@pytest.mark.parametrize("case", sorted(CASES))
def test_routes_table_is_golden(case, capsys):
    golden(f"{case}.txt", routes(capsys, CASES[case]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_routes_json_is_golden_and_says_what_the_table_says(case, capsys):
    text = routes(capsys, CASES[case])
    raw = routes(capsys, CASES[case], "-o", "json")
    golden(f"{case}.json", raw)
    doc = json.loads(raw)
    assert doc["version"] == 1
    table, left = text.split("\n\n")
    lines = [line.split() for line in table.splitlines()[1:]]
    assert len(lines) == len(doc["routes"]) > 0
    for cells, r in zip(lines, doc["routes"]):
        service = f"{r['service']['namespace']}/{r['service']['name']}:{r['service']['port']}"
        host = r["host"] or ("-" if r["path"] is None else "*")
        assert cells == [r["frontend"], host, r["path"] or "-", service, r["backend"],
                         f"{r['servers']['ready']}/{r['servers']['total']}", "yes" if r["sticky"] else "no",
                         r["algorithm"]]
    assert f"({len(doc['left_out'])}):" in left.splitlines()[0]
    for line, p in zip(left.splitlines()[2:], doc["left_out"]):
        assert line.split()[:3] == [f"{p['namespace']}/{p['service']}", p["level"], p["code"]]
        assert line.endswith(p["reason"])
