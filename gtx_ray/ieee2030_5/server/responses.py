"""Response state: the ResponseSets devices post Responses to (one per function set).

Bounded: each set keeps its newest ``max_per_set`` Responses; older ones are dropped and
counted. ``new`` and ``dropped`` name what changed since the store last wrote it through.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from gtx_ray.ieee2030_5.events import Response, event_mrid
from gtx_ray.ieee2030_5.server.errors import NotFound

SET_DRLC, SET_PRICING, SET_MESSAGING, SET_DER = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class ResponseSetInfo:
    id: int
    mrid: int
    description: str


RESPONSE_SETS = {
    SET_DRLC: ResponseSetInfo(SET_DRLC, event_mrid("rsps", SET_DRLC), "demand response"),
    SET_PRICING: ResponseSetInfo(SET_PRICING, event_mrid("rsps", SET_PRICING), "pricing"),
    SET_MESSAGING: ResponseSetInfo(SET_MESSAGING, event_mrid("rsps", SET_MESSAGING), "messaging"),
    SET_DER: ResponseSetInfo(SET_DER, event_mrid("rsps", SET_DER), "der"),
}


def reply_to(set_id: int) -> str:
    """The href events of a function set name in ``replyTo``."""
    return f"/rsps/{set_id}/rsp"


class ResponseBook:
    def __init__(self, max_per_set: int = 100_000) -> None:
        self.max_per_set = max_per_set
        self.responses: dict[int, OrderedDict[int, Response]] = {
            s: OrderedDict() for s in RESPONSE_SETS
        }
        self.next_id = 1
        self.dropped_total = 0
        self.new: list[Response] = []
        self.dropped: list[tuple[int, int]] = []

    def response_set(self, set_id: int) -> ResponseSetInfo:
        found = RESPONSE_SETS.get(set_id)
        if found is None:
            raise NotFound(f"no response set {set_id}")
        return found

    def add(
        self,
        set_id: int,
        kind: str,
        lfdi: str,
        subject: int,
        status: int | None,
        created: int | None,
        received: int,
    ) -> Response:
        self.response_set(set_id)
        response = Response(self.next_id, set_id, kind, lfdi, subject, status, created, received)
        self.next_id += 1
        self.put(response)
        self.new.append(response)
        kept = self.responses[set_id]
        while len(kept) > self.max_per_set:
            old_id, _ = kept.popitem(last=False)
            self.dropped.append((set_id, old_id))
            self.dropped_total += 1
        return response

    def put(self, response: Response) -> None:
        """Keep ``response`` as it is (the store loading)."""
        self.responses[response.set_id][response.id] = response
        self.next_id = max(self.next_id, response.id + 1)

    def of_set(
        self, set_id: int, lfdi: str | None = None, subject: int | None = None
    ) -> list[Response]:
        """Newest first; only ``lfdi``'s and about ``subject`` when given."""
        self.response_set(set_id)
        return [
            r
            for r in reversed(self.responses[set_id].values())
            if (lfdi is None or r.lfdi == lfdi) and (subject is None or r.subject == subject)
        ]

    def get(self, set_id: int, response_id: int) -> Response:
        self.response_set(set_id)
        found = self.responses[set_id].get(response_id)
        if found is None:
            raise NotFound(f"no response {response_id} in set {set_id}")
        return found
