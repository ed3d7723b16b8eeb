"""The Metrics object: values by name and labels, escaping, readiness; no server, no processes."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lbsync import metrics as metrics_mod


def test_label_values_are_escaped_and_read_back_exactly():
    m = metrics_mod.Metrics()
    odd = 'say "hi"\\ now\nplease'
    m.inc("lbsync_api_errors_total", status=odd)
    m.inc("lbsync_api_errors_total", 2, status=odd)
    got = [s for f in text_string_to_metric_families(m.text()) for s in f.samples
           if s.name == "lbsync_api_errors_total"]
    assert [(s.labels, s.value) for s in got] == [({"status": odd}, 3.0)]


def test_success_observes_the_duration_and_makes_ready():
    m = metrics_mod.Metrics()
    assert not m.ready and m.get("lbsync_ready") == 0
    m.success(0.25)
    m.success(0.5)
    assert m.ready and m.get("lbsync_ready") == 1
    assert m.get("lbsync_sync_duration_seconds_count") == 2 and m.get("lbsync_sync_duration_seconds_sum") == 0.75
    assert m.get("lbsync_last_sync_duration_seconds") == 0.5


def test_unready_after_three_failures_in_a_row():
    m = metrics_mod.Metrics()
    m.success(0.1)
    m.failure()
    m.failure()
    assert m.ready
    m.failure()
    assert not m.ready and m.get("lbsync_ready") == 0


def test_two_metrics_objects_never_share_values():
    a, b = metrics_mod.Metrics(), metrics_mod.Metrics()
    a.set("lbsync_backends", 7)
    assert a.get("lbsync_backends") == 7 and b.get("lbsync_backends") == 0


def test_a_metric_appears_only_once_it_was_counted_or_set():
    m = metrics_mod.Metrics()
    names = {f.name for f in text_string_to_metric_families(m.text())}
    assert "process_resident_memory_bytes" in names
    assert not any(n.startswith("lbsync_") for n in names)  # `absent(lbsync_ready)` alerts keep working
    m.failure()
    names = {f.name for f in text_string_to_metric_families(m.text())}
    assert {n for n in names if n.startswith("lbsync_")} == {"lbsync_ready"}


def test_labels_must_be_the_declared_ones():
    m = metrics_mod.Metrics()
    with pytest.raises(ValueError, match="lbsync_problems takes labels"):
        m.set("lbsync_problems", 1, kind="warning")
