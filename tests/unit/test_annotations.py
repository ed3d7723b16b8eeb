"""Annotation values: the whitelist grammars, and a table of hostile values with their outcome."""
import pytest

from lbsync import annotations as ann
from lbsync import model, render
from tests.cluster import slice_, snapshot, svc

OK, REJECTED = "ok", "rejected"

# (annotation, value, expected outcome) — at least 40 hostile or malformed values.
HOSTILE = [
    ("lb.host", "a.example.com\nuse_backend evil if TRUE", REJECTED),
    ("lb.host", "a.example.com\r\n", OK),  # trailing whitespace (YAML block scalar) is trimmed
    ("lb.host", "a.example.com\r\nb.example.com", REJECTED),
    ("lb.host", "a.example.com use_backend x", REJECTED),
    ("lb.host", "a.example.com#", REJECTED),
    ("lb.host", "a.example.com }", REJECTED),
    ("lb.host", "{{ 7*7 }}", REJECTED),
    ("lb.host", "{% for x in y %}", REJECTED),
    ("lb.host", "a.example.com'", REJECTED),
    ('lb.host', 'a.example.com"', REJECTED),
    ("lb.host", "a.exa\x00mple.com", REJECTED),
    ("lb.host", "a.exämple.com", REJECTED),
    ("lb.host", "xn--exmple-cua.com", OK),  # punycode is plain ASCII: fine
    ("lb.host", "a" * 64 + ".example.com", REJECTED),  # label over 63
    ("lb.host", ("a" * 60 + ".") * 5 + "com", REJECTED),  # over 253
    ("lb.host", "x" * 100_000, REJECTED),
    ("lb.host", "-bad.example.com", REJECTED),
    ("lb.host", "bad-.example.com", REJECTED),
    ("lb.host", "a..example.com", REJECTED),
    ("lb.host", "*.*.example.com", REJECTED),
    ("lb.host", "a.*.example.com", REJECTED),
    ("lb.host", "under_score.example.com", REJECTED),
    ("lb.host", "a.example.com\\", REJECTED),
    ("lb.host", "$(reboot).example.com", REJECTED),
    ("lb.host", "%[req.hdr(x)]", REJECTED),
    ("lb.host", "", REJECTED),
    ("lb.host", " , ", REJECTED),
    ("lb.host", "*.apps.example.com", OK),
    ("lb.host", "Shop.Example.COM.", OK),
    ("lb.path-prefix", "/a b", REJECTED),
    ("lb.path-prefix", "/a\n    http-request deny", REJECTED),
    ("lb.path-prefix", "/a(/|$)(.*)", REJECTED),
    ("lb.path-prefix", "/a[0-9]", REJECTED),
    ("lb.path-prefix", "/a^", REJECTED),
    ("lb.path-prefix", "relative", REJECTED),
    ("lb.path-prefix", "//", REJECTED),
    ("lb.path-prefix", "/a?b=1", REJECTED),
    ("lb.path-prefix", "/" + "a" * 300, REJECTED),
    ("lb.path-prefix", "/v1.2/api_x~y-z", OK),
    ("lb.path-prefix", "/shop/../admin", REJECTED),
    ("lb.path-prefix", "/./x", REJECTED),
    ("lb.algorithm", "roundrobin\nglobal", REJECTED),
    ("lb.algorithm", "uri", REJECTED),
    ("lb.algorithm", "hdr(host)", REJECTED),
    ("lb.algorithm", "", REJECTED),
    ("lb.check-interval", "5", REJECTED),
    ("lb.check-interval", "5 s", REJECTED),
    ("lb.check-interval", "1d", REJECTED),
    ("lb.check-interval", "99999999s", REJECTED),
    ("lb.check-interval", "50ms", REJECTED),
    ("lb.check-interval", "2s\n", OK),  # surrounding whitespace is trimmed; \n is not "inside"
    ("lb.check-path", "/ok hdr X-Evil yes", REJECTED),
    ("lb.check-path", "/ok#", REJECTED),
    ("lb.check-path", "health", REJECTED),
    ("lb.check-path", "/ok\"", REJECTED),
    ("lb.check-path", "/health?full=1&x=%20", OK),
    ("lb.cookie-sticky-session", "yes", REJECTED),
    ("lb.cookie-sticky-session", "true'", REJECTED),
    ("lb.cookie-sticky-session", "TRUE", OK),
    ("lb.sslTerm", "1", REJECTED),
    ("lb.tcp", "http:80\nlisten x", REJECTED),
    ("lb.tcp", "70000", REJECTED),
    ("lb.tcp", "http:0", REJECTED),
    ("lb.tcp", "http:abc", REJECTED),
    ("lb.tcp", "Bad_Name", REJECTED),
    ("lb.tcp", "http:18080", OK),
]

PARSERS = {"lb.host": ann.hosts, "lb.path-prefix": ann.path_prefix, "lb.algorithm": ann.algorithm,
           "lb.check-interval": ann.duration_ms, "lb.check-path": ann.check_path,
           "lb.cookie-sticky-session": ann.boolean, "lb.sslTerm": ann.boolean, "lb.tcp": ann.tcp_ports}


@pytest.mark.parametrize("key, value, outcome", HOSTILE, ids=lambda v: repr(v)[:40])
def test_hostile_value_table(key, value, outcome):
    if outcome == OK:
        PARSERS[key](value)
    else:
        with pytest.raises(ann.Invalid):
            PARSERS[key](value)


@pytest.mark.parametrize("key, value, outcome", [h for h in HOSTILE if h[2] == REJECTED],
                         ids=lambda v: repr(v)[:40])
def test_rejected_values_never_reach_the_config_and_the_service_stays_routed(key, value, outcome):
    s = svc("victim", "ns", ports=[("http", 80)], annotations={key: value})
    t = model.build(snapshot(s, slice_("victim", "ns", ready=["10.0.0.1"])), model.Options(tls=True))
    text = render.Renderer().render(t)
    if len(value.strip()) >= 6:  # short ones ("uri", "5") occur in any config
        assert value.strip() not in text
    assert any(p.annotation.startswith(ann.PREFIX + key) for p in t.problems)
    assert [b.service for b in t.backends] == ["victim"]


@pytest.mark.parametrize("key, value, outcome", [h for h in HOSTILE if h[2] == REJECTED],
                         ids=lambda v: repr(v)[:40])
def test_rejected_values_are_reported_with_a_code_and_never_in_the_reason(key, value, outcome):
    s = svc("victim", "ns", ports=[("http", 80)], annotations={key: value})
    t = model.build(snapshot(s, slice_("victim", "ns", ready=["10.0.0.1"])), model.Options(tls=True))
    bad = [p for p in t.problems if p.annotation.startswith(ann.PREFIX + key) and p.level == "warning"]
    assert bad and all(p.code == "InvalidAnnotation" for p in bad)
    for p in bad:  # the reason may leave lbsync (a Kubernetes Event): the value never does
        if len(value.strip()) > 6:  # shorter ones ("uri", "health") are words of any message
            assert value.strip() not in p.reason and value.strip()[:20] not in p.reason
            assert p.value  # it is in the log, quoted and cut short
        assert p.reason.isascii() and p.reason.isprintable()


def test_problem_messages_never_echo_huge_values():
    with pytest.raises(ann.Invalid) as e:
        ann.hosts("x" * 100_000)
    assert len(str(e.value)) < 200


def test_hosts_are_lower_cased_deduplicated_and_trailing_dots_dropped():
    assert ann.hosts("A.example.com, a.example.com., b.example.com") == ("a.example.com", "b.example.com")


@pytest.mark.parametrize("text, ms", [("500ms", 500), ("2s", 2000), ("1m", 60000)])
def test_durations(text, ms):
    assert ann.duration_ms(text) == ms


def test_render_word_guard_refuses_anything_but_one_word():
    for bad in ["a b", "a\nb", "a#b", "a'b", 'a"b', "a{b", "a}b", "a\\b", ""]:
        with pytest.raises(Exception):
            render.word(bad)
    assert render.word("shop.example.com") == "shop.example.com"
