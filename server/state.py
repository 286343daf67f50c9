"""Everything a request handler needs, hung on app.state.syncbed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.auth import Auth
    from server.cluster_config import ClusterConfig
    from server.config import Settings
    from server.events import EventBus
    from server.faults import Faults
    from server.history import History
    from server.storage import RecordStore
    from server.throttle import Limiter


@dataclass
class Counters:
    """Monotonic totals; the 1 Hz stats event turns their differences into rates."""

    requests: int = 0
    records: int = 0
    throttled: int = 0


@dataclass
class AppState:
    settings: Settings
    storage: RecordStore
    auth: Auth
    bus: EventBus
    faults: Faults
    history: History
    admin_token: str
    limiter: Limiter
    in_flight: int = 0
    counters: Counters = field(default_factory=Counters)
    cluster: ClusterConfig | None = None  # with a Redis bus: admin edits reach every worker

    def stats_request(self, *, records: int, status: int) -> None:
        """Count one finished sync request (cheap: called on the hot path)."""
        c = self.counters
        c.requests += 1
        c.records += records
        if status == 429:
            c.throttled += 1
