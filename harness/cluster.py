"""A cluster on one machine: one redis-server, one PostgreSQL, and groups ("hosts") of server processes.

Each worker is its own `python -m server` on its own port, so a test can kill the one a client or a
monitor is attached to; the workers of a group share a data directory's parent, as the processes of
one host would. Every worker has the same admin token, limiter store, event bus and database.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.postgres import PostgresServer
from harness.processes import RedisServer
from harness.server import LiveServer
from server import tokens
from syncbed.contract import COUNT_PATH

DATABASE = "syncbed"


@dataclass
class Cluster:
    """`groups` x `workers` servers; `limits` is TOML for the `[limits]` table after its store (rules)."""

    groups: int = 2
    workers: int = 2
    limits: str = ""
    args: Sequence[str] = ()
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="syncbed-cluster-")))
    redis: RedisServer | None = None
    postgres: PostgresServer | None = None
    servers: list[LiveServer] = field(default_factory=list)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def database_url(self) -> str:
        assert self.postgres is not None, "the cluster is not started"
        return self.postgres.url(DATABASE)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def group(self, index: int) -> list[LiveServer]:
        """The workers of one "host"."""
        return self.servers[index * self.workers : (index + 1) * self.workers]

    def config(self) -> str:
        assert self.redis is not None
        return (
            f'[server]\ndatabase = "{self.database_url}"\nadmin_token = "{self.admin_token}"\n\n'
            f'[limits]\nstore = "{self.redis.url}"\n{self.limits}'
        )

    def start(self) -> Cluster:
        self.redis = RedisServer(data_dir=self._dir("redis")).start()
        # PostgreSQL's own directory: initdb will not run as root, and its owner must be able to enter it.
        self.postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="syncbed-cluster-pg-"))).init().start()
        self.postgres.create_database(DATABASE)
        config = self.config()
        for g in range(self.groups):
            for w in range(self.workers):
                srv = LiveServer.at(self._dir(f"host{g + 1}/worker{w + 1}"), config=config, args=self.args)
                self.servers.append(srv.start(timeout=60))
        return self

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def token(self, user: str) -> str:
        """A bearer token for `user` in the shared database: every worker accepts it."""
        return tokens.create_token_at(self.database_url, user)

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def count(self, token: str) -> int:
        """The records the cluster holds for `token`'s user, asked of the first worker still up."""
        for srv in self.servers:
            if srv.proc is not None and srv.proc.poll() is None:
                r = httpx.get(srv.url + COUNT_PATH, headers={"Authorization": f"Bearer {token}"}, timeout=10)
                r.raise_for_status()
                return int(r.json()["count"])
        raise RuntimeError("no worker of the cluster is running")

    def stop(self) -> None:
        for srv in self.servers:
            with contextlib.suppress(Exception):
                srv.stop()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                self.redis.kill()
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.stop("immediate")
            shutil.rmtree(self.postgres.root, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
