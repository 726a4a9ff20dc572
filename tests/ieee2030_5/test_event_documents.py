"""The meters' side of the event documents (pure): what the server renders, the client reads
back as the same event; the Responses an event owes follow its responseRequired bits."""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.client.event_documents import parse_end_device_control
from gtx_ray.ieee2030_5.client.function_sets import load_control_of
from gtx_ray.ieee2030_5.client.responses import due_statuses, response_document
from gtx_ray.ieee2030_5.events import (
    EVENT_CANCELLED,
    EVENT_COMPLETED,
    EVENT_RECEIVED,
    EVENT_STARTED,
    RESPOND_RECEIVED,
    RESPOND_SPECIFIC,
    LoadShed,
)
from gtx_ray.ieee2030_5.server.drlc import DemandResponseBook
from gtx_ray.ieee2030_5.server.mappers.drlc import render_event

T0 = 1_767_225_600


def test_an_event_survives_the_wire_and_becomes_the_models_event(sep_schema):
    book = DemandResponseBook()
    event = book.create(
        T0,
        T0 + 3600,
        1800,
        LoadShed(duty_cycle_pct=40, cooling_offset_c=2, reduction_pct=12.5, reduction_kw=30),
        randomize_start_s=-300,
        randomize_duration_s=120,
        device_category=(1 << 9) | (1 << 21),
    )
    cancelled = book.cancel(event.id, T0 + 3900, randomized=True)
    doc = etree.fromstring(render_event(cancelled, T0 + 4000))
    assert sep_schema.validate(doc), sep_schema.error_log.last_error
    control, respond = parse_end_device_control(doc)
    assert control.mrid == event.mrid and control.shed == event.shed
    assert (control.start, control.duration) == (T0 + 3600, 1800)
    assert (control.randomize_start_s, control.randomize_duration_s) == (-300, 120)
    assert control.device_category == (1 << 9) | (1 << 21)
    assert control.cancelled_s == T0 + 3900 and control.cancel_randomized
    assert respond.reply_to == "/rsps/1/rsp"
    assert respond.response_required == RESPOND_RECEIVED | RESPOND_SPECIFIC
    model = load_control_of(control, frozenset({"M1"}))
    assert model.event_id == f"{event.mrid:032X}" and model.cancelled_at_s == T0 + 3900
    assert model.reduce_pct == 12.5 and model.reduce_kw == 30.0 and model.meter_ids == {"M1"}


def test_responses_owed_follow_the_bits_and_the_events_fate():
    both = RESPOND_RECEIVED | RESPOND_SPECIFIC
    assert due_statuses(both, True, False, False, False, False) == [EVENT_RECEIVED]
    assert due_statuses(both, True, True, True, False, False) == [
        EVENT_RECEIVED,
        EVENT_STARTED,
        EVENT_COMPLETED,
    ]
    assert due_statuses(both, True, True, False, True, False) == [
        EVENT_RECEIVED,
        EVENT_STARTED,
        EVENT_CANCELLED,
    ]
    assert due_statuses(RESPOND_RECEIVED, True, True, True, False, False) == [EVENT_RECEIVED]
    assert due_statuses(0, True, True, True, True, False) == []


def test_a_response_document_is_schema_valid(sep_schema):
    doc = etree.fromstring(response_document("DrResponse", "AB" * 20, 7, EVENT_STARTED, T0))
    assert sep_schema.validate(doc), sep_schema.error_log.last_error
