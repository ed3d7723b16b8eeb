"""How one watch event line is read: types, ERROR Statuses, and lines that are not events."""
import pytest

from lbsync.exceptions import ApiError, ApiForbidden, ApiGone, ApiMalformed
from lbsync.kube import stream

URL = "https://api:6443/api/v1/services"


def test_an_event_is_its_type_and_object_without_the_fields_lbsync_never_reads():
    kind, obj = stream._event(b'{"type":"MODIFIED","object":{"kind":"Service","metadata":{"name":"web",'
                              b'"managedFields":[{"manager":"x"}]}}}', URL)
    assert kind == "MODIFIED" and obj["metadata"] == {"name": "web"}


@pytest.mark.parametrize("status, cls", [
    ({"code": 410, "reason": "Expired", "message": "too old resource version: 1 (5)"}, ApiGone),
    ({"code": 410, "reason": "Gone"}, ApiGone),
    ({"reason": "Expired", "message": "no code, still a relist"}, ApiGone),
    ({"code": 403, "reason": "Forbidden", "message": "no"}, ApiForbidden),
    ({"code": 500, "reason": "InternalError", "message": "etcd"}, ApiError),
])
def test_an_error_event_becomes_the_matching_api_error(status, cls):
    import json
    line = json.dumps({"type": "ERROR", "object": dict(status, kind="Status")}).encode()
    with pytest.raises(cls) as info:
        stream._event(line, URL)
    assert URL in str(info.value) and status.get("message", "") in str(info.value)


@pytest.mark.parametrize("line", [b'{"type":"ADDED","obj', b'[1,2]', b'{"type":"SURPRISE","object":{}}',
                                  b'{"type":"ADDED","object":"text"}'])
def test_a_line_that_is_not_a_watch_event_is_refused_with_what_it_was(line):
    with pytest.raises(ApiMalformed, match="watch https://api:6443/api/v1/services"):
        stream._event(line, URL)
