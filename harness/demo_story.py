"""What the demo says about its acts, drawn from the measured figures: the same words in the table and the monitor."""

from __future__ import annotations

from collections.abc import Sequence

from harness.demo_acts import MIN_RATIO, Act, Outcome
from syncbed import contract as c


def title(index: int, act: Act, total: int) -> str:
    return f"act {index + 1}/{total}: {act.name}"


def figures(o: Outcome) -> str:
    """One act in a line: time, 429s, requests, and time over its bound."""
    return (
        f"{o.act.name}: {o.status}, {o.seconds:.2f} s, {o.throttled} x 429, {o.requests} requests "
        f"for {o.batches} batches, {o.ratio:.2f}x the bound of {o.bound:.2f} s"
    )


def _names(outcomes: Sequence[Outcome]) -> str:
    names = [o.act.name for o in outcomes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def summary(outcomes: Sequence[Outcome], exact: bool | None = None) -> list[str]:
    """The demo's conclusion: never a claim the figures beside it do not bear out."""
    lines: list[str] = []
    plain = [o for o in outcomes if not o.act.changes]
    seq = next((o for o in plain if o.act.client == c.SEQUENTIAL), None)
    concurrent = [o for o in plain if o.act.client != c.SEQUENTIAL and o.status == "complete"]
    if seq is not None and concurrent:
        fastest = min(concurrent, key=lambda o: o.seconds)
        if fastest.seconds < seq.seconds:
            lines.append(
                f"Concurrency pays up to the limit: {fastest.act.name} took {fastest.seconds:.2f} s, "
                f"{seq.seconds / fastest.seconds:.1f}x faster than sequential ({seq.seconds:.2f} s)."
            )
        else:
            lines.append(f"Sequential ({seq.seconds:.2f} s) was as fast as any concurrent act.")
    wasteful = [o for o in concurrent if o.throttled > 0]
    clean = [o for o in concurrent if o.throttled == 0]
    if wasteful and clean:
        best_clean = min(clean, key=lambda o: o.seconds)
        waste = sum(o.throttled for o in wasteful)
        gained = [o for o in wasteful if o.seconds < 0.98 * best_clean.seconds]
        lines.append(
            f"{_names(wasteful)} drew {waste} x 429 between them; {_names(clean)} drew none"
            + (
                f", and no 429 bought time: {best_clean.act.name} took {best_clean.seconds:.2f} s."
                if not gained
                else f"; {_names(gained)} finished sooner than {best_clean.act.name} ({best_clean.seconds:.2f} s)."
            )
        )
    for o in outcomes:
        if o.act.changes:
            said = "; ".join(ch.says for ch in o.act.changes)
            retries = int(o.result.get("retries", 0))
            lines.append(
                f"With {said} set mid-run, {o.act.name} ended {o.status}: {o.records:,} records in {o.seconds:.2f} s, "
                f"{retries} retries and {o.throttled} x 429 ({o.ratio:.2f}x the bound for the limits at its start)."
            )
    done = [o for o in outcomes if o.status == "complete"]
    beaten = [o for o in done if o.beats_bound]
    if beaten:
        lines.append(f"BUG: {_names(beaten)} beat the phase-aware bound (time/bound < {MIN_RATIO}).")
    elif done:
        low, high = min(o.ratio for o in done), max(o.ratio for o in done)
        lines.append(f"No act beat its phase-aware bound: time/bound {low:.2f}x to {high:.2f}x.")
    failed = [o for o in outcomes if o.status != "complete"]
    if failed:
        lines.append(f"{_names(failed)} did not complete; see the status column.")
    if exact is not None:
        lines.append(
            "The server holds every record once: nothing lost, nothing doubled."
            if exact
            else "MISMATCH: the server's record count differs from what the clients synced."
        )
    return lines
