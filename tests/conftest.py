"""Shared fixtures: real servers (syncbed, redis) on free 127.0.0.1 ports, in subprocesses that tests may kill.

The processes themselves are harness/'s; these fixtures only decide how long each lives. The `shared_*`
ones live for a test module: use them where tests leave nothing another test of the module would see
(their own user each, no throttle that binds, no setting changed).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import postgres as pg_harness
from harness.postgres import PostgresServer, temporary_postgres
from harness.processes import RedisServer, free_port, wait_until
from harness.server import LiveServer

__all__ = ["ROOT", "LiveServer", "PostgresServer", "RedisServer", "ServerFactory", "free_port", "wait_until"]

ROOT = Path(__file__).resolve().parent.parent

ServerFactory = Callable[..., LiveServer]


def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """make(config=None, args=(), env=None, start=True, data_dir=None) -> LiveServer; all stopped at the end."""
    made: list[LiveServer] = []

    def make(
        config: str | None = None,
        args: tuple[str, ...] | list[str] = (),
        env: dict[str, str] | None = None,
        start: bool = True,
        data_dir: Path | None = None,
    ) -> LiveServer:
        srv = LiveServer.at(data_dir or tmp_path_factory.mktemp("server"), config=config, args=args, env=env)
        made.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    yield from servers(tmp_path_factory)


@pytest.fixture(scope="module")
def shared_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """server_factory for module-scoped fixtures: the servers it makes stop after the module's last test."""
    yield from servers(tmp_path_factory)


@pytest.fixture
def live_server(server_factory: ServerFactory) -> LiveServer:
    """A server with the default (seed) settings."""
    return server_factory()


@pytest.fixture
def unlimited_server(server_factory: ServerFactory) -> LiveServer:
    """A server with every throttle off, for tests about ingest rather than limits."""
    return server_factory(args=["--no-limits"])


@pytest.fixture(scope="module")
def shared_live_server(shared_server_factory: ServerFactory) -> LiveServer:
    """live_server for a whole module: its seed throttles count every test's requests together."""
    return shared_server_factory()


@pytest.fixture(scope="module")
def shared_unlimited_server(shared_server_factory: ServerFactory) -> LiveServer:
    """unlimited_server for a whole module: give each test its own user."""
    return shared_server_factory(args=["--no-limits"])


def require_redis() -> None:
    """Fail loudly when CI (or SYNCBED_REQUIRE_REDIS) expects redis-server and it is missing; skip elsewhere."""
    if shutil.which("redis-server"):
        return
    message = "redis-server is not installed (scripts/test installs it with apt-get when run as root)"
    if os.environ.get("SYNCBED_REQUIRE_REDIS") or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    require_redis()
    srv = RedisServer(data_dir=tmp_path_factory.mktemp("redis")).start()
    yield srv
    srv.kill()


def require_postgres() -> None:
    """Fail loudly when CI (or SYNCBED_REQUIRE_POSTGRES) expects PostgreSQL and it is missing; skip elsewhere."""
    if pg_harness.installed():
        return
    message = "PostgreSQL (initdb, pg_ctl) is not installed (scripts/test installs it with apt-get when run as root)"
    if os.environ.get("SYNCBED_REQUIRE_POSTGRES") or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway cluster for the whole session (fsync off), stopped and removed at the end."""
    require_postgres()
    with temporary_postgres() as srv:
        yield srv


_databases = itertools.count(1)


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A new, empty database on the session's cluster for this test; dropped after it."""
    name = f"test_{os.getpid()}_{next(_databases)}"
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)
