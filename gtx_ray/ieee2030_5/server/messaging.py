"""Messaging state: one MessagingProgram of campus notices and its TextMessages.

Pure state and rules (``now`` passed in, epoch s). Operators post and cancel notices; every
device reads them. At most ``max_messages`` are kept, the longest-ended go first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gtx_ray.ieee2030_5.events import TextMessage, event_mrid
from gtx_ray.ieee2030_5.server.errors import BadRequest, Conflict, NotFound

MAX_TEXT_CHARS = 1_000
MAX_DURATION_S = 366 * 86_400


@dataclass(frozen=True, slots=True)
class MessagingProgram:
    id: int
    mrid: int
    description: str
    locale: str
    primacy: int


DEFAULT_PROGRAM = MessagingProgram(1, event_mrid("msg", 1), "UTCC campus notices", "en-US", 1)


class MessageBook:
    """Every notice of one server; ``changed`` is set by every change."""

    def __init__(self, max_messages: int = 1_000) -> None:
        self.max_messages = max_messages
        self.programs = {DEFAULT_PROGRAM.id: DEFAULT_PROGRAM}
        self.messages: dict[int, TextMessage] = {}
        self.next_id = 1
        self.changed = False

    def program(self, program_id: int) -> MessagingProgram:
        found = self.programs.get(program_id)
        if found is None:
            raise NotFound(f"no messaging program {program_id}")
        return found

    def message(self, message_id: int) -> TextMessage:
        found = self.messages.get(message_id)
        if found is None:
            raise NotFound(f"no text message {message_id}")
        return found

    def messages_of(self, program_id: int) -> list[TextMessage]:
        """Start ascending, newest creation first."""
        found = [m for m in self.messages.values() if m.program_id == program_id]
        found.sort(key=lambda m: (m.start, -m.creation_time, -m.id))
        return found

    def active_of(self, program_id: int, now: int) -> list[TextMessage]:
        return [
            m
            for m in self.messages_of(program_id)
            if m.cancelled_s is None and m.start <= now < m.start + m.duration
        ]

    def create(
        self,
        now: int,
        start: int,
        duration: int,
        text: str,
        *,
        priority: int = 1,
        originator: str | None = None,
        program_id: int = DEFAULT_PROGRAM.id,
        response_required: int = 0,
    ) -> TextMessage:
        """A new notice; BadRequest naming the field that is wrong."""
        self.program(program_id)
        if not text.strip():
            raise BadRequest("text must not be empty")
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(f"text must be at most {MAX_TEXT_CHARS} characters, got {len(text)}")
        if not 1 <= duration <= MAX_DURATION_S:
            raise BadRequest(f"duration_s must be 1..{MAX_DURATION_S} s, got {duration}")
        if not 0 <= priority <= 3:
            raise BadRequest(f"priority must be 0 (low) .. 3 (critical), got {priority}")
        if originator is not None and len(originator) > 20:
            raise BadRequest(f"originator must be at most 20 characters, got {len(originator)}")
        message_id = self.next_id
        self.next_id += 1
        message = TextMessage(
            id=message_id,
            program_id=program_id,
            mrid=event_mrid("txt", program_id, message_id, start),
            creation_time=now,
            start=start,
            duration=duration,
            text=text,
            priority=priority,
            originator=originator,
            response_required=response_required,
        )
        self.messages[message_id] = message
        self._prune(now)
        self.changed = True
        return message

    def cancel(self, message_id: int, now: int) -> TextMessage:
        message = self.message(message_id)
        if message.cancelled_s is not None:
            raise Conflict(f"message {message_id} was already cancelled")
        cancelled = replace(message, cancelled_s=now)
        self.messages[message_id] = cancelled
        self.changed = True
        return cancelled

    def _prune(self, now: int) -> None:
        excess = len(self.messages) - self.max_messages
        if excess > 0:
            ended = sorted(
                (m for m in self.messages.values() if m.start + m.duration <= now),
                key=lambda m: m.start + m.duration,
            )
            for m in ended[:excess]:
                del self.messages[m.id]
