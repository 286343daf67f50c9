"""Property: whatever batch arrives, the server answers 200 or a documented 4xx, and stores exactly what it says."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncbed import contract
from tests.conftest import LiveServer

ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=10**13),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
texts = st.one_of(st.text(max_size=40), st.integers(), st.none(), st.just("x" * 3000))
urls = st.one_of(
    st.builds(lambda p: "https://example.com/" + p, st.text(alphabet="abcxyz/-._", max_size=30)),
    st.text(max_size=30),
    st.just("javascript:void(0)"),
    st.integers(),
)
ids = st.one_of(st.text(alphabet="abcdef0123", min_size=1, max_size=6), st.text(max_size=3), st.integers())
record = st.one_of(
    st.fixed_dictionaries(
        {"id": ids, "url": urls, "visitedAt": ints},
        optional={"title": texts, "durationMs": ints, "tabId": ints, "extra": st.integers()},
    ),
    st.integers(),
    st.text(max_size=4),
)
bodies = st.one_of(
    st.lists(record, max_size=30).map(lambda recs: msgspec.json.encode({"pageVisits": recs})),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def prop_server(shared_unlimited_server: LiveServer) -> LiveServer:
    return shared_unlimited_server


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_any_body_is_answered_honestly(prop_server: LiveServer, body: bytes) -> None:
    tok = getattr(prop_server, "_prop_token", None) or prop_server.token("prop")
    prop_server._prop_token = tok  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
    before = prop_server.count(tok)
    r = httpx.post(prop_server.url + contract.SYNC_PATH, content=body, headers=headers, timeout=30)
    after = prop_server.count(tok)
    assert r.status_code in (200, 400, 413, 422), r.text
    payload = r.json()
    if r.status_code == 200:
        assert payload["accepted"] == payload["stored"] + payload["duplicates"]
        assert after - before == payload["stored"]
        # A retry of an accepted batch stores nothing more.
        again = httpx.post(prop_server.url + contract.SYNC_PATH, content=body, headers=headers, timeout=30).json()
        assert again["stored"] == 0 and again["duplicates"] == payload["accepted"]
        assert prop_server.count(tok) == after
    else:
        assert payload["error"] in (contract.E_INVALID_JSON, contract.E_INVALID_RECORDS, contract.E_BATCH_TOO_LARGE)
        assert payload["message"]
        assert after == before
