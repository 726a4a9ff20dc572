"""Messaging for devices: the campus notices program, its messages and the active ones."""

from __future__ import annotations

from dataclasses import dataclass

from gtx_ray.ieee2030_5.events import TextMessage
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import Page, PageRequest
from gtx_ray.ieee2030_5.server.errors import NotFound
from gtx_ray.ieee2030_5.server.managers.common import caller_poll_rate, paginate
from gtx_ray.ieee2030_5.server.messaging import MessagingProgram
from gtx_ray.ieee2030_5.server.registry import Registry


@dataclass(frozen=True, slots=True)
class MessagingProgramView:
    program: MessagingProgram
    messages: int
    active: int


@dataclass(frozen=True, slots=True)
class MessagePage:
    program_id: int
    page: Page[TextMessage]
    now: int


def _view(registry: Registry, program: MessagingProgram, now: int) -> MessagingProgramView:
    book = registry.messaging
    return MessagingProgramView(
        program, len(book.messages_of(program.id)), len(book.active_of(program.id, now))
    )


def list_programs(
    registry: Registry, caller: DeviceIdentity, now: int, page: PageRequest
) -> Page[MessagingProgramView]:
    views = [_view(registry, p, now) for p in registry.messaging.programs.values()]
    return paginate(views, page, poll_rate=caller_poll_rate(registry, caller))


def get_program(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int
) -> MessagingProgramView:
    return _view(registry, registry.messaging.program(program_id), now)


def list_messages(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int, page: PageRequest
) -> MessagePage:
    registry.messaging.program(program_id)
    items = registry.messaging.messages_of(program_id)
    return MessagePage(program_id, paginate(items, page, lambda m: m.creation_time), now)


def list_active_messages(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int, page: PageRequest
) -> MessagePage:
    registry.messaging.program(program_id)
    return MessagePage(
        program_id, paginate(registry.messaging.active_of(program_id, now), page), now
    )


def get_message(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int, message_id: int
) -> tuple[TextMessage, int]:
    message = registry.messaging.messages.get(message_id)
    if message is None or message.program_id != program_id:
        raise NotFound(f"no text message {message_id} in program {program_id}")
    return message, now
