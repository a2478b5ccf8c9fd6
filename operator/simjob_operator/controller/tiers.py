"""SimTiers as the operator knows them: a cache fed by the watch, checked on a miss.

``handlers`` feeds every SimTier event into ``TierCache.update``; ``get`` answers
from the cache and, on a miss, reads the API server (so a tier created a moment
before its SimJobs is never reported unknown because the watch lagged).
Misses are not cached. Used by ``reconciling`` and ``admitting``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simjob_operator.api.simtier import SimTierSpec
from simjob_operator.core.view import parse_tier
from simjob_operator.kube.seam import KubeApi


class TierCache:
    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube
        self._bodies: dict[str, dict[str, Any]] = {}

    def update(self, name: str, body: Mapping[str, Any] | None) -> None:
        """A SimTier was added or changed (``body``) or deleted (None)."""
        if body is None:
            self._bodies.pop(name, None)
        else:
            self._bodies[name] = {"spec": dict(body.get("spec") or {})}

    async def get(self, name: str | None) -> tuple[SimTierSpec | None, str | None]:
        """(spec, None), (None, why it is unusable) or (None, None) when it does not exist."""
        if not name:
            return None, None
        body = self._bodies.get(name)
        if body is None:
            fetched = await self._kube.get_simtier(name)
            if fetched is None:
                return None, None
            self.update(name, fetched)
            body = self._bodies[name]
        return parse_tier(body)
