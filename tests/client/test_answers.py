"""Reading one sync answer: outcome, acknowledgement and RateLimit fields, from the shapes servers send."""

from __future__ import annotations

import json

import httpx
import pytest

from client import answers
from client.policy import Outcome
from client.ratelimit_fields import Policy, Remaining
from syncbed import contract
from syncbed.contract import SyncResponse
from tests.conftest import ServerFactory
from tests.server.helpers import auth, batch, throttle, visit

POLICY = '"req/ip";q=300;w=300, "sync/ip";q=10;w=1, "sync/user";q=5;w=1'
REMAINING = '"req/ip";r=294;t=300, "sync/ip";r=4;t=1, "sync/user";r=0;t=1'
# The 429 of docs/protocol.md, byte for byte.
THROTTLED = (
    b'{"error":"rate_limited","message":"Rate limit sync/user exceeded: 5 requests per 1 s; retry in 0.42 s.",'
    b'"rule":"sync/user","retry_after":0.42}'
)


def response(status: int, content: bytes = b"", headers: list[tuple[str, str]] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers or [], content=content)


def test_a_200_carries_its_counts() -> None:
    answer = answers.read(response(200, b'{"accepted": 1000, "stored": 998, "duplicates": 2}'))
    assert answer.outcome == Outcome(200)
    assert answer.ack == SyncResponse(accepted=1000, stored=998, duplicates=2)
    assert answer.policies == {} and answer.remaining == {}


@pytest.mark.parametrize(
    "content",
    [b"", b"OK", b'{"accepted": "1000", "stored": 1, "duplicates": 0}', b'{"stored": 1}', b"[1, 2]"],
)
def test_a_2xx_with_an_unreadable_body_is_still_a_success(content: bytes) -> None:
    answer = answers.read(response(200, content))
    assert answer.outcome == Outcome(200)
    assert answer.ack is None


def test_a_429_names_its_rule_and_its_exact_wait() -> None:
    headers = [
        (contract.HEADER_RETRY_AFTER, "1"),
        (contract.HEADER_RATELIMIT_POLICY, POLICY),
        (contract.HEADER_RATELIMIT, REMAINING),
    ]
    answer = answers.read(response(429, THROTTLED, headers))
    assert answer.outcome == Outcome(
        429,
        "rate_limited",
        "Rate limit sync/user exceeded: 5 requests per 1 s; retry in 0.42 s.",
        0.42,  # the body's float, not the header's whole second
        "sync/user",
        exact=True,
    )
    assert answer.ack is None
    assert answer.policies == {
        "req/ip": Policy("req/ip", 300, 300.0),
        "sync/ip": Policy("sync/ip", 10, 1.0),
        "sync/user": Policy("sync/user", 5, 1.0),
    }
    assert answer.remaining["sync/user"] == Remaining("sync/user", 0, 1.0)
    assert answer.remaining["req/ip"] == Remaining("req/ip", 294, 300.0)


def test_rate_limit_fields_are_left_unread_when_asked() -> None:
    headers = [(contract.HEADER_RATELIMIT_POLICY, POLICY), (contract.HEADER_RATELIMIT, REMAINING)]
    for status, content in ((200, b'{"accepted": 1, "stored": 1, "duplicates": 0}'), (429, THROTTLED)):
        answer = answers.read(response(status, content, headers), fields=False)
        assert answer.policies == {} and answer.remaining == {}
        assert answer.outcome.status == status


def test_a_field_sent_on_several_lines_is_one_list() -> None:
    headers = [
        (contract.HEADER_RATELIMIT_POLICY, '"a";q=5;w=1'),
        (contract.HEADER_RATELIMIT_POLICY, '"b";q=7;w=60'),
        (contract.HEADER_RATELIMIT, '"a";r=4;t=1'),
        (contract.HEADER_RATELIMIT, '"b";r=6;t=59'),
    ]
    answer = answers.read(response(200, b'{"accepted": 1, "stored": 1, "duplicates": 0}', headers))
    assert set(answer.policies) == {"a", "b"} and answer.policies["b"] == Policy("b", 7, 60.0)
    assert set(answer.remaining) == {"a", "b"} and answer.remaining["b"] == Remaining("b", 6, 59.0)


@pytest.mark.parametrize(
    ("body_retry_after", "header", "want"),
    [
        ("", "3", 3.0),  # no retry_after in the body: the header's
        ('"retry_after": true,', "3", 3.0),  # a boolean is no number of seconds
        ('"retry_after": "0.5",', "2", 2.0),
        ('"retry_after": 0,', "3", 0.0),  # zero is a number: the body still wins
        ('"retry_after": 7,', None, 7.0),
        ("", None, None),
        ("", "soon", None),
    ],
)
def test_retry_after_is_the_bodys_number_else_the_header(
    body_retry_after: str, header: str | None, want: float | None
) -> None:
    content = f'{{"error": "rate_limited", {body_retry_after} "message": "m"}}'.encode()
    headers = [(contract.HEADER_RETRY_AFTER, header)] if header is not None else []
    assert answers.read(response(429, content, headers)).outcome.retry_after == want


def test_a_proxys_plain_text_error_is_kept_as_its_first_200_characters() -> None:
    text = b"  <html><body>502 Bad Gateway " + b"x" * 300 + b"</body></html>\n"
    answer = answers.read(response(502, text, [(contract.HEADER_RETRY_AFTER, "30")]))
    assert answer.outcome.status == 502 and answer.outcome.error == ""
    assert answer.outcome.message == text.decode().strip()[:200]
    assert answer.outcome.retry_after == 30.0
    assert answer.outcome.rule is None


def test_a_json_error_that_is_not_an_object_is_read_as_text() -> None:
    answer = answers.read(response(500, b'["oops"]'))
    assert answer.outcome == Outcome(500, "", '["oops"]')
    assert answers.error_body(response(500, b'["oops"]')) is None
    assert answers.error_body(response(500, b"not json")) is None
    assert answers.error_body(response(422, b'{"error": "invalid_records"}')) == {"error": "invalid_records"}


def test_odd_error_fields_do_not_break_the_reading() -> None:
    answer = answers.read(response(403, b'{"error": 7, "rule": ["x"]}'))
    assert answer.outcome == Outcome(403, "7", "", None, None)


def test_no_answer_at_all_is_an_outcome_without_a_status() -> None:
    outcome = answers.failure(httpx.ConnectError("All connection attempts failed")).outcome
    assert outcome == Outcome(None, "ConnectError", "All connection attempts failed")
    silent = answers.failure(httpx.ReadTimeout("")).outcome
    assert (silent.status, silent.error, silent.message) == (None, "ReadTimeout", "ReadTimeout('')")
    assert answers.failure(TimeoutError()).outcome.message == "TimeoutError()"


def test_a_real_servers_answers_read_as_the_client_acts_on_them(server_factory: ServerFactory) -> None:
    srv = server_factory(throttle("sync/user", 2, "1m", key="user", sync=True))
    token = srv.token("alice")
    url = srv.url + contract.SYNC_PATH
    with httpx.Client(timeout=30.0) as client:
        ok = answers.read(client.post(url, content=batch(3, "real"), headers=auth(token)))
        bad_body = json.dumps({"pageVisits": [visit(0, "bad"), visit(1, "bad", url="ftp://example.com")]})
        bad = answers.read(client.post(url, content=bad_body, headers=auth(token)))
        throttled = answers.read(client.post(url, content=batch(1, "late"), headers=auth(token)))
    assert ok.outcome == Outcome(200)
    assert ok.ack == SyncResponse(accepted=3, stored=3, duplicates=0)
    assert ok.policies["sync/user"] == Policy("sync/user", 2, 60.0)
    assert ok.remaining["sync/user"].remaining == 1
    assert (bad.outcome.status, bad.outcome.error) == (422, contract.E_INVALID_RECORDS)
    assert "record 1, url" in bad.outcome.message
    assert throttled.outcome.status == 429 and throttled.outcome.rule == "sync/user"
    assert throttled.outcome.error == "rate_limited"
    assert throttled.outcome.retry_after is not None and 0 < throttled.outcome.retry_after <= 60
    assert throttled.remaining["sync/user"].remaining == 0
