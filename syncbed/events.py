"""The events: one Struct per type, a union tagged by `type`, and the one decoder and encoder of them.

The server publishes these structs and the monitor decodes them with the same types, so a field
exists on the wire exactly when it is declared here. `id` is the bus's (None on the two per-subscriber
stream.* events, on a worker's own bus.* events and on what a worker sends while its shared stream is
down), `ts` the moment the event was made.
"""

from __future__ import annotations

import time
from typing import Final, TypeAlias, get_args

import msgspec

from syncbed.faults import FAULT_FIELDS, FaultSettings
from syncbed.responses import RuleSettings, WorkerStats

EV_RUN_STARTED: Final = "run.started"
EV_BATCH_RECEIVED: Final = "batch.received"
EV_BATCH_STORED: Final = "batch.stored"
EV_BATCH_REJECTED: Final = "batch.rejected"
EV_REQUEST_THROTTLED: Final = "request.throttled"
EV_RUN_FINISHED: Final = "run.finished"
EV_STATS: Final = "stats"
EV_CONFIG_CHANGED: Final = "config.changed"
EV_LIMITER_STORE: Final = "limiter.store"
EV_LIMITER_BAN: Final = "limiter.ban"
EV_LIMITER_UNBAN: Final = "limiter.unban"
EV_STREAM_DROPPED: Final = "stream.dropped"
EV_STREAM_RESET: Final = "stream.reset"
EV_BUS_DOWN: Final = "bus.down"
EV_BUS_UP: Final = "bus.up"


# omit_defaults: only the fields that are sometimes absent have defaults (None), so a field the server
# does not send stays off the wire, and every other one is always there (null when unknown).
class _Event(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    id: int | None = None
    ts: float = msgspec.field(default_factory=time.time)


class RunStarted(_Event, tag=EV_RUN_STARTED, kw_only=True):
    """A client announced its run (POST /api/v1/runs)."""

    run: str
    user: str | None
    total_records: int
    total_batches: int
    batch_size: int
    mode: str
    concurrency: int


class BatchReceived(_Event, tag=EV_BATCH_RECEIVED, kw_only=True):
    """A batch passed every check and goes to storage; `run`, `batch`, `attempt` are the trace headers."""

    run: str | None
    batch: int | None
    attempt: int | None
    user: str | None
    records: int
    admitted: float | None = None  # when the throttles counted it (epoch s): its window is admitted // period


class BatchStored(_Event, tag=EV_BATCH_STORED, kw_only=True):
    """A batch was stored; published as its 200 goes out, `ms` after the request arrived."""

    run: str | None
    batch: int | None
    attempt: int | None
    user: str | None
    records: int
    stored: int
    duplicates: int
    ms: float


class BatchRejected(_Event, tag=EV_BATCH_REJECTED, kw_only=True):
    """A batch was refused (`status` 0: the connection was dropped); `records` once its body was read."""

    run: str | None
    batch: int | None
    attempt: int | None
    user: str | None
    status: int
    error: str
    records: int | None = None


class RequestThrottled(_Event, tag=EV_REQUEST_THROTTLED, kw_only=True):
    """A throttle refused a request (or would have, in a dry run)."""

    run: str | None
    batch: int | None
    attempt: int | None
    user: str | None
    ip: str
    rule: str
    key: str
    retry_after: float
    dry_run: bool


class RunFinished(_Event, tag=EV_RUN_FINISHED, kw_only=True):
    """The client's verdict on its run (POST /api/v1/runs/{id}/finish)."""

    run: str
    user: str | None
    status: str
    ok_batches: int
    failed_batches: int
    seconds: float


class HotKey(msgspec.Struct):
    """One of a rule's hottest keys in the current window, and its count."""

    key: str
    count: int


class ServerStats(_Event, tag=EV_STATS, kw_only=True):
    """The 1 Hz summary: rates since the last one, requests in flight, each rule's hottest keys.

    On a cluster (a Redis bus) the figures are summed over the workers and `workers` lists each one's share."""

    records_per_s: float
    requests_per_s: float
    throttled_per_s: float
    in_flight: int
    limiter: dict[str, list[HotKey]]
    faults: FaultSettings | None = None
    rules: list[RuleSettings] | None = None
    workers: list[WorkerStats] | None = None
    response: str | None = None  # the response style (limits.response): how a refusal is worded


class ConfigChanged(_Event, tag=EV_CONFIG_CHANGED, kw_only=True):
    """A live edit: `what` is "faults" (the changed names, then all four values) or "limits" (the rule)."""

    what: str
    changed: list[str] | None = None
    latency_ms: int | None = None
    jitter_ms: int | None = None
    error_rate: float | None = None
    reset_rate: float | None = None
    rule: str | None = None
    name: str | None = None
    kind: str | None = None
    limit: int | None = None
    period: float | None = None
    key: str | None = None
    paths: list[str] | None = None
    methods: list[str] | None = None
    algorithm: str | None = None
    enabled: bool | None = None

    def fault_values(self) -> dict[str, int | float]:
        """The fault settings this edit carries, by name (none for a limits edit)."""
        values = {name: getattr(self, name) for name in FAULT_FIELDS}
        return {k: v for k, v in values.items() if v is not None}


class LimiterStore(_Event, tag=EV_LIMITER_STORE, kw_only=True):
    """The limiter's shared store went `down` (requests fail open) or came back `up`."""

    store: str
    status: str


class LimiterBan(_Event, tag=EV_LIMITER_BAN, kw_only=True):
    """A fail2ban or allow2ban rule banned `key` (the `count`th failure in its findtime) until `until`."""

    rule: str
    kind: str  # "fail2ban" | "allow2ban"
    key: str
    ip: str
    user: str | None
    count: int
    until: float


class LimiterUnban(_Event, tag=EV_LIMITER_UNBAN, kw_only=True):
    """The ban of `key` by `rule` ended (its bantime passed); published once, by one worker."""

    rule: str
    kind: str
    key: str


class BusDown(_Event, tag=EV_BUS_DOWN, kw_only=True):
    """This worker lost the shared event stream: until `bus.up` its subscribers get its own events only."""

    bus: str
    worker: str
    error: str


class BusUp(_Event, tag=EV_BUS_UP, kw_only=True):
    """This worker's shared event stream is back after `down_s` seconds; `local` events were this worker's only."""

    bus: str
    worker: str
    down_s: float
    local: int


class StreamDropped(_Event, tag=EV_STREAM_DROPPED, kw_only=True):
    """This subscriber fell behind and missed `missed` events, ids `first_id` to `last_id`."""

    missed: int
    first_id: int | None
    last_id: int | None


class StreamReset(_Event, tag=EV_STREAM_RESET, kw_only=True):
    """The resume id is not held (too old, or from another server life): what follows is all there is."""

    last_event_id: int
    oldest_id: int


Event: TypeAlias = (
    RunStarted
    | BatchReceived
    | BatchStored
    | BatchRejected
    | RequestThrottled
    | RunFinished
    | ServerStats
    | ConfigChanged
    | LimiterStore
    | LimiterBan
    | LimiterUnban
    | BusDown
    | BusUp
    | StreamDropped
    | StreamReset
)
RunEvent: TypeAlias = RunStarted | BatchReceived | BatchStored | BatchRejected | RequestThrottled | RunFinished
BatchEvent: TypeAlias = BatchReceived | BatchStored | BatchRejected | RequestThrottled

EVENT_CLASSES: Final[tuple[type[Event], ...]] = get_args(Event)
RUN_EVENT_CLASSES: Final[tuple[type[RunEvent], ...]] = get_args(RunEvent)
BATCH_EVENT_CLASSES: Final[tuple[type[BatchEvent], ...]] = get_args(BatchEvent)
_TAGS: Final[dict[type, str]] = {cls: str(cls.__struct_config__.tag) for cls in EVENT_CLASSES}
EVENT_TYPES: Final = tuple(_TAGS.values())
BATCH_EVENT_TYPES: Final = tuple(_TAGS[cls] for cls in BATCH_EVENT_CLASSES)

_decoder: Final = msgspec.json.Decoder(Event)
_encoder: Final = msgspec.json.Encoder()
encode_event = _encoder.encode


def decode_event(data: bytes | str) -> Event:
    """One event from its JSON; msgspec.DecodeError (or its ValidationError) when it is none of ours."""
    return _decoder.decode(data)


def event_type(event: Event) -> str:
    """The event's wire name: its tag, the SSE `event:` line."""
    return _TAGS[type(event)]
