"""A meter's Metering Mirror: its MirrorUsagePoint on the server and the readings posted to it.

MirrorUsagePoint: POSTed with an mRID derived from the meter id (``mirror_mrid``), the LFDI,
``roleFlags`` (isMirror | isSubmeter by default), ``serviceCategoryKind`` 0 (electricity),
``status`` 1 and one MirrorMeterReading per quantity in ``QUANTITIES`` with its ReadingType.
``201``/``204`` + Location (or a look-up in the list by mRID). POSTing it again is idempotent.

Readings: one ``MirrorMeterReadingList`` per POST holding, per quantity, a single ``Reading``
when one interval is due or a ``MirrorReadingSet`` (timePeriod = first start .. last end, one
Reading per interval) when several are, at most ``post_limit`` intervals (initially
``max_readings_per_post``); a ``413`` halves ``post_limit`` (the server's body limit) instead of
losing readings. A 400 (or 413 for one interval, 415, 422) → ``Gone`` once, so the mirror is
re-created (the server may have lost its ReadingTypes), then those readings are dropped as
rejected. Readings leave the queue only when the server accepted them (2xx).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lxml import etree
from yarl import URL

from gtx_ray.ieee2030_5.client.documents import (
    mirror_mrid,
    mirror_usage_point_document,
    readings_document,
)
from gtx_ray.ieee2030_5.client.errors import Busy, Gone, ProtocolError, Refused
from gtx_ray.ieee2030_5.client.pending import PendingQueue
from gtx_ray.ieee2030_5.client.session import Session
from gtx_ray.ieee2030_5.client.settings import ClientSettings
from gtx_ray.ieee2030_5.codec import XmlError, read_hex


class Mirror:
    """One meter's MirrorUsagePoint and the posting of its queued readings.

    server_now: the server's clock (epoch s) for lastUpdateTime/nextUpdateTime. url/href: the
    MirrorUsagePoint once created (href as status shows it). Counters: ``posts_ok``,
    ``posts_failed``, ``last_post_time`` (epoch s of the last accepted POST).
    """

    def __init__(
        self,
        session: Session,
        queue: PendingQueue,
        meter_id: str,
        lfdi: str,
        interval_s: int,
        settings: ClientSettings,
        server_now: Callable[[], int],
    ) -> None:
        self.session = session
        self.queue = queue
        self.meter_id = meter_id
        self.lfdi = lfdi
        self.interval_s = interval_s
        self.settings = settings
        self.server_now = server_now
        self.url: URL | None = None
        self.href: str | None = None
        self.post_limit = settings.max_readings_per_post
        self._bad_once = False  # a 400 for readings was answered by re-creating the mirror
        self.posts_ok = 0
        self.posts_failed = 0
        self.last_post_time: float | None = None

    # --- the MirrorUsagePoint ----------------------------------------------------------------
    async def create(self, list_url: URL) -> etree._Element:
        """POST the MirrorUsagePoint to the list at ``list_url`` (or find it there); returns the
        MirrorUsagePoint document as the server has it."""
        s = self.settings
        mrid = mirror_mrid(self.meter_id, s.pen)
        body = mirror_usage_point_document(
            self.meter_id, self.lfdi, self.interval_s, s.role_flags, s.pen
        )
        reply = await self.session.request("POST", list_url, body)
        if reply.status in (200, 201, 204) and reply.location:
            url = self.session.join(reply.location)
        elif reply.status in (200, 201, 204):
            found = await self._find(list_url, mrid)
            if found is None:
                what = f"POST {list_url.path} → {reply.status}"
                raise ProtocolError(f"{what}; mirror not in the list")
            url = found
        elif reply.status == 409:
            raise Refused(
                f"MirrorUsagePoint mRID {mrid:032X} of meter {self.meter_id} is mirrored by "
                "another device on this server (HTTP 409)"
            )
        elif reply.status == 400:
            raise ProtocolError(f"POST {list_url.path} → 400 (MirrorUsagePoint refused)")
        else:
            self.session.raise_for(reply, f"POST {list_url.path}")
        self.url = url
        self.href = self.session.local(url)
        mup = await self.session.get(url, "MirrorUsagePoint")
        self._bad_once = False
        return mup

    async def _find(self, list_url: URL, mrid: int) -> URL | None:
        def ours(item: etree._Element) -> bool:
            try:
                return read_hex(item, "mRID", 16) == mrid
            except XmlError:
                return False

        return await self.session.find_in_list(
            list_url, "MirrorUsagePointList", "MirrorUsagePoint", ours
        )

    # --- readings ----------------------------------------------------------------------------
    async def post_once(self, post_rate_s: int) -> str | None:
        """POST up to ``post_limit`` of the oldest queued intervals (nextUpdateTime is
        ``post_rate_s`` s ahead). Returns None, or why the server rejected them for good (they
        are dropped and counted); raises the error that says what to do otherwise."""
        if self.url is None:
            return None
        items = self.queue.take(self.post_limit)
        if not items:
            return None
        try:
            server_now = self.server_now()
            body = readings_document(
                self.meter_id,
                items,
                self.interval_s,
                server_now,
                server_now + post_rate_s,
                self.settings.pen,
            )
            reply = await self.session.request("POST", self.url, body)
        except BaseException as exc:
            self.queue.settle(items, accepted=False)
            if isinstance(exc, Exception):
                self.posts_failed += 1
            raise
        if 200 <= reply.status < 300:
            self.queue.settle(items, accepted=True)
            self.posts_ok += 1
            self.last_post_time = round(time.time(), 3)
            self._bad_once = False
            return None
        self.posts_failed += 1
        what = f"POST {self.url.path} ({len(items)} intervals)"
        if reply.status == 413 and len(items) > 1:  # too large for this server: smaller posts
            self.post_limit = max(1, len(items) // 2)
            self.queue.settle(items, accepted=False)
            raise Busy(f"{what} → HTTP 413; posting at most {self.post_limit} intervals")
        if reply.status in (400, 413, 415, 422):
            if not self._bad_once:  # maybe the server lost the mirror's ReadingTypes: re-create
                self._bad_once = True
                self.queue.settle(items, accepted=False)
                raise Gone(f"{what} → HTTP {reply.status}; re-creating the mirror")
            self._bad_once = False
            self.queue.discard(items)
            return f"{what} → HTTP {reply.status}: readings rejected by the server"
        self.queue.settle(items, accepted=False)
        self.session.raise_for(reply, what)
