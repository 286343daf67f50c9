"""POST /api/v1/data/sync as a raw ASGI endpoint: stream the body under a byte cap, validate, store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from server.faults import drop_connection
from server.responses import send_error, send_json
from server.storage import StorageUnavailable, Trace
from server.validation import Problem, parse_body
from syncbed import contract
from syncbed.events import BatchReceived, BatchRejected, BatchStored
from syncbed.wire import RUN_ID_RULE, RepeatedHeader, ascii_int, first_header, is_run_id, single_header

if TYPE_CHECKING:
    from server.state import AppState

log = logging.getLogger("syncbed.ingest")

_STATUS = {
    contract.E_INVALID_JSON: 400,
    contract.E_INVALID_RECORDS: 422,
    contract.E_BATCH_TOO_LARGE: 413,
    contract.E_INVALID_REQUEST: 400,
}


STORAGE_UNAVAILABLE = "Storage is unavailable right now; retry the batch later."


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


def parse_trace(scope: Scope) -> Trace | str:
    """Trace headers -> Trace, or a sentence saying which one is malformed."""
    try:
        run = single_header(scope["headers"], contract.HEADER_RUN_KEY)
        numbers: list[int | None] = []
        for name, key, lo in (
            (contract.HEADER_BATCH, contract.HEADER_BATCH_KEY, 0),
            (contract.HEADER_ATTEMPT, contract.HEADER_ATTEMPT_KEY, 1),
        ):
            raw = single_header(scope["headers"], key)
            value = ascii_int(raw)
            if raw is not None and (value is None or value < lo):
                return f"{name} must be an integer >= {lo} in ASCII digits, got {raw[:32]!r}"
            numbers.append(value)
    except RepeatedHeader as exc:
        return f"Send one {exc.name} header, not several"
    if run is not None and not is_run_id(run):
        return f"{contract.HEADER_RUN} must be {RUN_ID_RULE}, got {run[:72]!r}"
    return Trace(run=run, batch=numbers[0], attempt=numbers[1])


@dataclass(slots=True)
class Subject:
    """What this request's events are about: its run, batch, attempt, user and, once read, its records."""

    run: str | None = None
    batch: int | None = None
    attempt: int | None = None
    user: str | None = None
    records: int | None = None

    def rejected(self, status: int, error: str) -> BatchRejected:
        return BatchRejected(
            run=self.run,
            batch=self.batch,
            attempt=self.attempt,
            user=self.user,
            status=status,
            error=error,
            records=self.records,
        )

    def received(self, records: int, admitted: float | None) -> BatchReceived:
        self.records = records
        return BatchReceived(
            run=self.run, batch=self.batch, attempt=self.attempt, user=self.user, records=records, admitted=admitted
        )

    def stored(self, records: int, stored: int, duplicates: int, ms: float) -> BatchStored:
        return BatchStored(
            run=self.run,
            batch=self.batch,
            attempt=self.attempt,
            user=self.user,
            records=records,
            stored=stored,
            duplicates=duplicates,
            ms=ms,
        )


async def own_run(
    state: AppState, run: str, user: str, subject: Subject, reject: Callable[..., Awaitable[None]]
) -> bool:
    """Claim the run for `user`, or answer why not (another user's run: 403; no storage: 503); True if answered."""
    try:
        owner = await state.history.claim(run, user)
    except StorageUnavailable as exc:
        log.warning("storage unavailable: %s", exc)
        await reject(503, contract.E_UNAVAILABLE, STORAGE_UNAVAILABLE)
        return True
    if owner == user:
        return False
    subject.run = None  # the refusal is the sender's, not part of the other user's run
    await reject(
        403,
        contract.E_FORBIDDEN,
        f"Run {run!r} belongs to another user; send your batches under a run id of your own "
        f"(a new {contract.HEADER_RUN}, or none).",
    )
    return True


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, refusing as soon as it grows past `limit` bytes."""
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunks += message.get("body", b"")
        if len(chunks) > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return bytes(chunks)


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the client hangs up (call once the whole body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def let_arrivals_in() -> None:
    """Give requests that reached the socket meanwhile a chance to start their clocks before ours decodes.

    Decoding and validating 1,000 records holds the event loop for a few milliseconds. A request
    whose bytes arrived meanwhile is read in the next loop pass and starts running in the pass after;
    three passes let it in first (tens of microseconds when nothing waits), so a burst's requests start
    their service time as they arrive instead of one decode after another.
    """
    for _ in range(3):
        await asyncio.sleep(0)


def is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class SyncEndpoint:
    """The sync route as a plain ASGI app (Starlette treats a class instance as one)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await sync(scope, receive, send)


async def sync(scope: Scope, receive: Receive, send: Send) -> None:
    state: AppState = scope["app"].state.syncbed
    # The service time runs from the app's first sight of the request, so auth and the throttle are inside it.
    started: float = scope.get("state", {}).get("syncbed.arrived") or time.perf_counter()
    settings = state.settings.server
    trace = parse_trace(scope)
    user = await state.auth.user_for_scope(scope)
    subject = Subject(user=user)
    if isinstance(trace, Trace):
        subject.run, subject.batch, subject.attempt = trace.run, trace.batch, trace.attempt
        if trace.run is not None:  # the access log names the attempt: on a cluster, which worker served it
            scope["state"]["syncbed.trace"] = f"{trace.run}/{trace.batch}/{trace.attempt}"

    # Any, not object: the details are the error body's fields, never send_error's `headers`.
    async def reject(status: int, code: str, message: str, **details: Any) -> None:
        state.bus.publish(subject.rejected(status, code))
        state.stats_request(records=0, status=status)
        scope["state"]["syncbed.error"] = code
        await send_error(send, status, code, message, **details)

    if scope["method"] != "POST":
        message = f"Use POST for {contract.SYNC_PATH}, not {scope['method']}."
        await send_error(send, 405, contract.E_METHOD_NOT_ALLOWED, message, headers=[(b"allow", b"POST")])
        return
    if user is None:
        sent = any(key == contract.AUTHORIZATION_KEY for key, _ in scope["headers"])
        why = "not valid (unknown, revoked or malformed)" if sent else "missing"
        await reject(401, contract.E_UNAUTHORIZED, f"The bearer token is {why}; send Authorization: Bearer <token>.")
        return
    if isinstance(trace, str):
        await reject(400, contract.E_INVALID_REQUEST, trace + ".")
        return
    if trace.run is not None and await own_run(state, trace.run, user, subject, reject):
        return
    content_type = first_header(scope["headers"], contract.CONTENT_TYPE_KEY)
    if not is_json(content_type):
        got = "none" if content_type is None else repr(content_type[:64])
        await reject(415, contract.E_UNSUPPORTED_MEDIA_TYPE, f"Send Content-Type: application/json (got {got}).")
        return
    limits = {"max_records": settings.max_batch_records, "max_bytes": settings.max_body_bytes}
    declared = first_header(scope["headers"], contract.CONTENT_LENGTH_KEY)
    too_big = f"The body is larger than {settings.max_body_bytes} bytes; split the batch and retry."
    declared_bytes = ascii_int(declared)  # the server's HTTP parser has refused anything else already
    if declared_bytes is not None and declared_bytes > settings.max_body_bytes:
        await reject(413, contract.E_BATCH_TOO_LARGE, too_big, **limits)
        return
    try:
        body = await read_body(receive, settings.max_body_bytes)
    except BodyTooLarge:
        await reject(413, contract.E_BATCH_TOO_LARGE, too_big, **limits)
        return
    except ClientGone:
        return
    await let_arrivals_in()
    parsed = parse_body(body, settings.max_batch_records)
    if isinstance(parsed, Problem):
        status = _STATUS[parsed.code]
        details: dict[str, object] = dict(limits) if status == 413 else {}
        if parsed.errors:
            details.update(errors=parsed.errors, error_count=parsed.total_errors)
        await reject(status, parsed.code, parsed.message, **details)
        return
    n = len(parsed)
    state.bus.publish(subject.received(n, scope["state"].get("syncbed.admitted")))
    share = state.faults.jitter_share()
    state.in_flight += 1
    try:
        # Drawn before the transaction, so an injected fault never stores any part of a batch.
        outcome = state.faults.draw()
        result = None  # stays None when storage fails: answered 503 below
        if outcome == "ok":
            try:
                result = await state.storage.store_batch(user, parsed, trace, (time.perf_counter() - started) * 1000)
            except StorageUnavailable as exc:
                log.warning("storage unavailable: %s", exc)
        # latency_ms is the batch's whole service time, as on a backend that takes that long per batch: the
        # work above ran inside it instead of being added on top, so L in the physical bound is exact.
        # After the body, receive() only ever says the client hung up: a hold must not outlive its client.
        stayed = await state.faults.hold(started, share, lambda: wait_for_disconnect(receive))
    finally:
        state.in_flight -= 1
    if not stayed:
        # Nobody reads an answer now; a batch stored before the hang-up stays stored and is reported below.
        scope["state"]["syncbed.error"] = "client_gone"
        if result is None:
            state.bus.publish(subject.rejected(0, "client_gone"))
            return
    if outcome == "error":
        await reject(503, contract.E_INJECTED_FAULT, "Injected fault: the server refused this batch; retry it.")
        return
    if outcome == "reset":
        state.bus.publish(subject.rejected(0, "connection_reset"))
        scope["state"]["syncbed.error"] = "connection_reset"
        await drop_connection(scope, send)
        return
    if result is None:
        await reject(503, contract.E_UNAVAILABLE, STORAGE_UNAVAILABLE)
        return
    ms = round((time.perf_counter() - started) * 1000, 2)
    state.bus.publish(subject.stored(n, result.stored, result.duplicates, ms), result.once)
    state.stats_request(records=n, status=200)
    scope["state"].update({"syncbed.records": n, "syncbed.stored": result.stored})
    await send_json(send, 200, contract.SyncResponse(accepted=n, stored=result.stored, duplicates=result.duplicates))
