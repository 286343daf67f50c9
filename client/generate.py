"""Realistic synthetic page visits: browsing sessions over days, tabs, plausible URLs and titles."""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Callable, Iterator

import msgspec

from syncbed.contract import PageVisit

_WORDS = [
    "async",
    "python",
    "rust",
    "sqlite",
    "index",
    "cache",
    "queue",
    "retry",
    "backoff",
    "window",
    "limit",
    "token",
    "bucket",
    "latency",
    "throughput",
    "batch",
    "server",
    "client",
    "proxy",
    "header",
    "stream",
    "socket",
    "thread",
    "process",
    "memory",
    "garbage",
    "compiler",
    "parser",
    "schema",
    "migration",
    "deploy",
    "review",
    "release",
    "testing",
    "benchmark",
    "profile",
    "trace",
    "metric",
    "graph",
    "tree",
    "hash",
    "sort",
    "search",
    "vector",
    "matrix",
    "kernel",
    "network",
    "storage",
    "backup",
    "replica",
    "cluster",
    "shard",
]
_TOPICS = [
    "Rate_limiting",
    "Token_bucket",
    "Exponential_backoff",
    "TCP_congestion_control",
    "SQLite",
    "Write-ahead_logging",
    "Idempotence",
    "Little's_law",
    "Queueing_theory",
    "HTTP_429",
    "Consistent_hashing",
    "CAP_theorem",
    "Bloom_filter",
    "Leaky_bucket",
    "Network_congestion",
    "Round-trip_delay",
    "Jitter",
    "Browser_extension",
    "Web_browsing_history",
]
_PEOPLE = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
]
_REPOS = [
    "syncbed",
    "httpx",
    "starlette",
    "uvicorn",
    "textual",
    "rich",
    "msgspec",
    "aiosqlite",
    "redis-py",
    "limits",
    "slowapi",
]


def _slug(rng: random.Random, k: int) -> list[str]:
    return [rng.choice(_WORDS) for _ in range(k)]


def _wiki(rng: random.Random) -> tuple[str, str]:
    topic = rng.choice(_TOPICS)
    return f"https://en.wikipedia.org/wiki/{topic}", f"{topic.replace('_', ' ')} - Wikipedia"


def _github(rng: random.Random) -> tuple[str, str]:
    owner, repo = rng.choice(_PEOPLE), rng.choice(_REPOS)
    kind = rng.random()
    if kind < 0.4:
        n = rng.randint(1, 4000)
        words = " ".join(_slug(rng, 4)).capitalize()
        return f"https://github.com/{owner}/{repo}/issues/{n}", f"{words} · Issue #{n} · {owner}/{repo} · GitHub"
    if kind < 0.7:
        n = rng.randint(1, 4000)
        words = " ".join(_slug(rng, 3)).capitalize()
        return f"https://github.com/{owner}/{repo}/pull/{n}", f"{words} by {owner} · Pull Request #{n} · GitHub"
    return f"https://github.com/{owner}/{repo}", f"{owner}/{repo}: {' '.join(_slug(rng, 5))}"


def _stackoverflow(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(1_000_000, 79_000_000)
    words = _slug(rng, 6)
    title = "How to " + " ".join(words) + "?"
    return f"https://stackoverflow.com/questions/{n}/how-to-{'-'.join(words)}", f"{title} - Stack Overflow"


def _docs(rng: random.Random) -> tuple[str, str]:
    module = rng.choice(("asyncio", "sqlite3", "random", "itertools", "functools", "pathlib", "json", "time"))
    return f"https://docs.python.org/3/library/{module}.html", f"{module} — Python 3 documentation"


def _video(rng: random.Random) -> tuple[str, str]:
    vid = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for _ in range(11))
    return f"https://www.youtube.com/watch?v={vid}", f"{' '.join(_slug(rng, 5)).title()} - YouTube"


def _news(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(30_000_000, 42_000_000)
    return f"https://news.ycombinator.com/item?id={n}", f"{' '.join(_slug(rng, 6)).capitalize()} | Hacker News"


def _search(rng: random.Random) -> tuple[str, str]:
    q = _slug(rng, rng.randint(1, 4))
    return f"https://www.google.com/search?q={'+'.join(q)}", f"{' '.join(q)} - Google Search"


def _mail(rng: random.Random) -> tuple[str, str]:
    return f"https://mail.example.com/mail/u/0/#inbox/{rng.getrandbits(64):016x}", "Inbox (3) - mail"


def _blog(rng: random.Random) -> tuple[str, str]:
    year, words = rng.randint(2012, 2025), _slug(rng, 4)
    host = rng.choice(("blog.cloudflare.com", "aws.amazon.com/blogs", "engineering.example.org", "lwn.net"))
    return f"https://{host}/{year}/{'-'.join(words)}/", " ".join(words).title()


# (weight, maker): a long-tailed mix, like real history.
_SITES: tuple[tuple[float, Callable[[random.Random], tuple[str, str]]], ...] = (
    (22, _search),
    (18, _github),
    (12, _stackoverflow),
    (10, _docs),
    (9, _wiki),
    (9, _video),
    (8, _news),
    (7, _mail),
    (5, _blog),
)
_MAKERS = [maker for _, maker in _SITES]
_WEIGHTS = [weight for weight, _ in _SITES]

_DAY_MS = 86_400_000


def _seed_tag(seed: int) -> str:
    return f"{seed & 0xFFFF_FFFF_FFFF:012x}"


def new_seed() -> int:
    return secrets.randbits(48)


def visits(n: int, seed: int, *, now_ms: int | None = None) -> Iterator[PageVisit]:
    """`n` page visits of one user: the same seed always gives the same records and ids."""
    rng = random.Random(seed)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    days = min(365, max(1, math.ceil(n / 1500)))  # a busy but human day is ~1,500 visits
    start = now_ms - days * _DAY_MS
    span, mean_session = days * _DAY_MS, 25
    tag, produced = _seed_tag(seed), 0
    while produced < n:
        # Sessions spread over the span in proportion to what was produced, so time only moves on.
        t = int(start + span * produced / n * 0.98)
        tabs = [rng.getrandbits(31) for _ in range(rng.randint(1, 6))]
        for _ in range(max(1, int(rng.expovariate(1 / mean_session)))):
            if produced >= n:
                break
            url, title = rng.choices(_MAKERS, _WEIGHTS)[0](rng)
            duration = int(min(3_600_000, rng.lognormvariate(10.3, 1.2)))  # median ~30 s
            yield PageVisit(
                id=f"pv-{tag}-{produced:07d}",
                url=url,
                visited_at=min(t, now_ms),
                title=title if rng.random() > 0.02 else None,
                duration_ms=duration,
                tab_id=rng.choice(tabs),
            )
            produced += 1
            t += duration + int(rng.expovariate(1 / 4000))


def encoded(records: Iterator[PageVisit], chunk: int = 10_000) -> Iterator[list[tuple[str, bytes]]]:
    """Chunks of (id, wire JSON) ready for `Outbox.put`."""
    encoder = msgspec.json.Encoder()
    out: list[tuple[str, bytes]] = []
    for record in records:
        out.append((record.id, encoder.encode(record)))
        if len(out) >= chunk:
            yield out
            out = []
    if out:
        yield out
