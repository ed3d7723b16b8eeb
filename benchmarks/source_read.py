"""Benchmark worker: read one `--source` file as lbsync does (FileSource.fetch) in a fresh process."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lbsync.source import FileSource  # noqa: E402

if __name__ == "__main__":
    snap = FileSource(sys.argv[1]).fetch()
    if not snap.services:
        raise SystemExit("no Services read from %s" % sys.argv[1])
