"""Messaging, the meter's side: poll the MessagingPrograms, log each new TextMessage once and
keep the newest few for status; acknowledge it when ``responseRequired`` asks."""

from __future__ import annotations

import logging
import threading
from collections import deque

from gtx_ray.ieee2030_5.client.discovery import Links
from gtx_ray.ieee2030_5.client.event_documents import parse_text_message
from gtx_ray.ieee2030_5.client.responses import response_document
from gtx_ray.ieee2030_5.client.session import Session, rate
from gtx_ray.ieee2030_5.codec import children
from gtx_ray.ieee2030_5.events import EVENT_RECEIVED, RESPOND_RECEIVED

log = logging.getLogger(__name__)

DEFAULT_POLL_RATE_S = 900
KEEP = 10
"""Messages kept per meter for status."""
PRIORITY_NAMES = ("low", "normal", "high", "critical")


class MessagingPoller:
    name = "messaging"

    def __init__(self, meter_id: str) -> None:
        self.meter_id = meter_id
        self._lock = threading.Lock()
        self._seen: set[int] = set()
        self._recent: deque[dict] = deque(maxlen=KEEP)

    def detail(self) -> dict[str, object]:
        with self._lock:
            return {"messages": list(self._recent)}

    async def poll(self, session: Session, links: Links, now: int) -> float:
        poll_rate = None
        for list_url in links.all("MessagingProgramListLink"):
            size = session.settings.list_page_size
            doc = await session.get(list_url.update_query(s=0, l=size), "MessagingProgramList")
            r = rate(doc.get("pollRate"), DEFAULT_POLL_RATE_S)
            poll_rate = r if poll_rate is None else min(poll_rate, r)
            for program in children(doc, "MessagingProgram"):
                url = session.href(program, "TextMessageListLink", required=False)
                if url is None:
                    continue
                for item in await session.read_list(url, "TextMessageList", "TextMessage"):
                    await self._take(session, item, now)
        return float(poll_rate or DEFAULT_POLL_RATE_S)

    async def _take(self, session: Session, item, now: int) -> None:
        message, respond = parse_text_message(item)
        if message.mrid in self._seen or message.cancelled_s is not None:
            return
        priority = PRIORITY_NAMES[min(message.priority, 3)]
        log.info("meter %s: notice (%s priority): %s", self.meter_id, priority, message.text)
        if respond.response_required & RESPOND_RECEIVED and respond.reply_to:
            body = response_document(
                "TextResponse", session.identity.lfdi, message.mrid, EVENT_RECEIVED, now
            )
            reply = await session.request("POST", session.join(respond.reply_to), body)
            if reply.status not in (200, 201, 204):
                session.raise_for(reply, "POST TextResponse")
        with self._lock:
            self._seen.add(message.mrid)
            self._recent.append(
                {
                    "start": message.start,
                    "duration_s": message.duration,
                    "priority": priority,
                    "text": message.text,
                }
            )
