"""A throwaway PostgreSQL cluster: initdb under a temporary directory, pg_ctl on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.processes import free_port

USER = "syncbed"  # the cluster's superuser; trust authentication, loopback only
_OWNER = "postgres"  # initdb and postgres refuse to run as root: as root, the cluster runs as this user


def find_binary(name: str) -> str | None:
    """`name` on PATH, else the newest /usr/lib/postgresql/<version>/bin/<name> (Debian keeps them there)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")

    def version(path: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([0-9.]+)/", path)
        return tuple(int(p) for p in m.group(1).split(".") if p) if m else ()

    return max(candidates, key=version) if candidates else None


def installed() -> bool:
    return find_binary("initdb") is not None and find_binary("pg_ctl") is not None


def _owner() -> tuple[int, int] | None:
    """The uid and gid to run the cluster as: None when not root (it runs as us)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_OWNER)
    except KeyError:
        entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


@dataclass
class PostgresServer:
    """One cluster in `root` (data, sockets, log); `fast` turns fsync off, for clusters that are thrown away."""

    root: Path
    port: int = 0
    fast: bool = True

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        binary = find_binary(args[0])
        if binary is None:
            raise FileNotFoundError(f"{args[0]} is not installed (apt-get install postgresql)")
        owner = _owner()
        return subprocess.run(
            [binary, *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            user=None if owner is None else owner[0],
            group=None if owner is None else owner[1],
            extra_groups=None if owner is None else [],
        )

    def _check(self, out: subprocess.CompletedProcess[str], what: str) -> None:
        if out.returncode != 0:
            raise RuntimeError(f"{what} failed ({out.returncode}): {out.stderr.strip()[-2000:]}\n{self.log()[-2000:]}")

    def init(self) -> PostgresServer:
        owner = _owner()
        if owner is not None:
            os.chown(self.root, *owner)
        no_sync = ["--no-sync"] if self.fast else []
        args = ["-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C", *no_sync]
        self._check(self._run("initdb", *args), "initdb")
        return self

    def start(self, timeout: float = 30.0) -> PostgresServer:
        settings = [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.root}"]
        if self.fast:
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        args = ["-D", str(self.data), "-l", str(self.log_path), "-w", "-t", str(int(timeout)), "-o", " ".join(settings)]
        self._check(self._run("pg_ctl", *args, "start", timeout=timeout + 10), "pg_ctl start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop: `fast` closes every session (an outage as clients see it), `immediate` is a crash."""
        out = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        if out.returncode != 0 and self.running():
            self._check(out, "pg_ctl stop")

    def version(self) -> str:
        """PostgreSQL's version, e.g. '15.8'."""
        m = re.search(r"\(PostgreSQL\) (\S+)", self._run("pg_ctl", "--version").stdout)
        return m.group(1) if m else "?"

    def running(self) -> bool:
        return self.data.exists() and self._run("pg_ctl", "-D", str(self.data), "status").returncode == 0

    def execute(self, sql: str, database: str = "postgres") -> None:
        """One statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Dropped even while servers still hold connections to it (they are ended)."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_postgres(fast: bool = True, prefix: str = "syncbed-pg-") -> Iterator[PostgresServer]:
    """A started cluster in a new temporary directory (outside pytest's, which only root may enter); gone after."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    srv = PostgresServer(root, fast=fast)
    try:
        yield srv.init().start()
    finally:
        with contextlib.suppress(Exception):
            srv.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
