"""The command palette's own provider: every action of the main screen's keys, by name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from monitor.keys import palette_actions


class ActionCommands(Provider):
    """One command per bound key: its footer word as the name, the help's sentence and the key as help."""

    def _commands(self) -> list[tuple[str, str, str]]:
        return [(k.label, f"{k.does} (key: {k.shown})", k.action) for k in palette_actions()]

    async def discover(self) -> Hits:
        for name, help_text, action in self._commands():
            yield DiscoveryHit(name, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        matcher = self.matcher(query)
        for name, help_text, action in self._commands():
            score = max(matcher.match(name), matcher.match(help_text) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(self.app.run_action, action), help=help_text)
