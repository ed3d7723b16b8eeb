#!/usr/bin/env python3
"""Rewrite the settings table in docs/settings.md from lbsync.settings.reference().

The table sits between the markers `<!-- settings:begin -->` and `<!-- settings:end -->`;
everything outside them is left alone. Run it after adding or changing a setting:

    python scripts/gen_settings_doc.py          # rewrite docs/settings.md
    python scripts/gen_settings_doc.py --check  # exit 1 if the file is out of date

tests/unit/test_docs.py runs the same comparison, so the doc cannot drift from the code.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from lbsync import settings  # noqa: E402 - needs the path above when run as a script

DOC = os.path.join(ROOT, "docs", "settings.md")
BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"
KINDS = {"": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "list"}


def _cell(text: str) -> str:
    """Markdown-table-safe text: pipes escaped, no line breaks."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else '`""` (empty)'


def table() -> str:
    """The generated Markdown table (no markers), one row per setting, in declaration order."""
    rows = ["| flag | environment variable | YAML key | type | default | meaning |",
            "|---|---|---|---|---|---|"]
    for flag, env, default, help_text in settings.reference():
        key = flag[2:].replace("-", "_")
        kind = settings.FIELDS[key].metadata["kind"]
        flags = f"`{flag}`" + (f"<br>`--no-{flag[2:]}`" if kind == "bool" else "")
        rows.append(f"| {flags} | `{env}` | `{key}` | {KINDS[kind]} | {_cell(_code(default))} | "
                    f"{_cell(help_text)} |")
    return "\n".join(rows) + "\n"


def current_table(text: str) -> str:
    """What the file holds between the markers."""
    try:
        start = text.index(BEGIN) + len(BEGIN)
        end = text.index(END, start)
    except ValueError:
        raise SystemExit(f"{DOC}: markers {BEGIN} / {END} not found") from None
    return text[start:end].strip("\n") + "\n"


def rewrite(text: str) -> str:
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END, start)
    return text[:start] + "\n" + table() + text[end:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when out of date")
    args = parser.parse_args(argv)
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    if args.check:
        if current_table(text) != table():
            print(f"{DOC} is out of date: run python scripts/gen_settings_doc.py", file=sys.stderr)
            return 1
        return 0
    new = rewrite(text)
    if new != text:
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(new)
        print(f"rewrote the settings table in {DOC}")
    else:
        print(f"{DOC} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
