"""CORS for browser clients (a web page or an extension page calling the API): off unless origins are set."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from syncbed import contract

METHODS = ("GET", "POST", "PUT")
# Every request header the API reads; Content-Type and Authorization are not CORS-safelisted.
HEADERS = (
    "Authorization",
    "Content-Type",
    contract.HEADER_RUN,
    contract.HEADER_BATCH,
    contract.HEADER_ATTEMPT,
    contract.HEADER_LAST_EVENT_ID,
)
# Without these a page's fetch() cannot read the fields it needs to pace itself.
EXPOSE = (contract.HEADER_RATELIMIT, contract.HEADER_RATELIMIT_POLICY, contract.HEADER_RETRY_AFTER)
MAX_AGE_S = 600


def cors_middleware(origins: tuple[str, ...]) -> list[Middleware]:
    """The middleware to put outermost, or none at all when no origin is allowed (nothing changes).

    Outermost, it answers a preflight OPTIONS itself, before the limiter counts or refuses it, and it
    adds the CORS headers to every answer from inside, a 429 from the throttle included.
    """
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=list(METHODS),
            allow_headers=list(HEADERS),
            expose_headers=list(EXPOSE),
            allow_credentials=False,  # bearer tokens, never cookies
            max_age=MAX_AGE_S,
        )
    ]
