"""slots.shape: the slot counts `parse` finds, without building the live file's Servers."""
import glob
import os

import pytest

from lbsync import slots

GOLDEN = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "golden", "*", "expected.cfg")))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_shape_counts_what_parse_finds_in_every_golden_config(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    parsed = slots.parse(text)
    assert slots.shape(text) == {name: len(found) for name, found in parsed.items()}


def test_shape_of_spare_slots_and_ipv6_and_lines_that_are_not_server_slots():
    text = ("backend a\n    server s1 10.0.0.1:80\n    server s3 127.0.0.1:1 disabled\n"
            "backend b\n    server s1 [fd00::1]:8080 weight 3\n"
            "backend c\n    server web 10.0.0.2:80\n    server s2 not-an-address:80\n"
            "frontend f\n    bind :80\n")
    assert slots.shape(text) == {"a": 3, "b": 1}
    assert slots.shape(text) == {name: len(found) for name, found in slots.parse(text).items()}
