"""`python -m bench.ingest_pg`: one server's ingest on SQLite against the same on PostgreSQL (fsync on)."""

from __future__ import annotations

import argparse
import asyncio

from bench.common import syncbed_server, table
from bench.ingest import CONCURRENCY, make_bodies, push
from harness.postgres import temporary_postgres
from server.tokens import create_token_at


def run(quick: bool) -> str:
    n_batches = 20 if quick else 100
    records = n_batches * 1000
    rounds = 1 if quick else 3
    rates: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    # A durable cluster (fsync and synchronous commit on), as deployed; SQLite in WAL as the server opens it.
    with temporary_postgres(fast=False) as cluster:
        version = cluster.version()
        for r in range(rounds):  # alternating, so machine noise hits both alike
            with syncbed_server("--no-limits") as srv:
                token = srv.token("bench")
                rates["sqlite"].append(
                    records / asyncio.run(push(srv.url, make_bodies(n_batches, 1000, f"s{r}"), token))
                )
            url = cluster.create_database(f"bench{r}")
            with syncbed_server("--no-limits", "--database", url) as srv:
                token = create_token_at(url, "bench")
                rates["postgres"].append(
                    records / asyncio.run(push(srv.url, make_bodies(n_batches, 1000, f"p{r}"), token))
                )
    rows = [[name, f"{max(v):,.0f}", ", ".join(f"{x:,.0f}" for x in v)] for name, v in rates.items()]
    ratio = max(rates["postgres"]) / max(rates["sqlite"])
    return (
        f"### ingest_pg\n\n{records:,} records in {n_batches} batches of 1,000, {CONCURRENCY} requests in flight, "
        f"one server, limits off; server.database sqlite against a local PostgreSQL {version} "
        f"(fsync on). Best of {rounds} alternating rounds.\n\n"
        + table(["server.database", "records/s (best)", "all rounds"], rows)
        + f"\n\nRatio PostgreSQL / SQLite: **{ratio:.2f}**.\n"
    )


def main(quick: bool = False) -> str:
    return run(quick)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    print(main(p.parse_args().quick))
