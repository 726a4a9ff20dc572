"""EndDevice, Registration, DeviceInformation and FunctionSetAssignments documents."""

from __future__ import annotations

import hashlib

from lxml import etree

from gtx_ray.ieee2030_5.codec import (
    XmlError,
    expect_root,
    hex_text,
    leaf,
    link,
    node,
    read_bool,
    read_hex,
    read_str,
    read_uint,
    root,
    serialize,
)
from gtx_ray.ieee2030_5.elements import read_time
from gtx_ray.ieee2030_5.identity import normalise_lfdi
from gtx_ray.ieee2030_5.models import DeviceInformation, EndDeviceIn, EndDeviceView, Page
from gtx_ray.ieee2030_5.server.managers.edev import RegistrationView

SFDI_BITS = 40
"""SFDIType is UInt40 in the schema (an SFDI itself needs at most 40 bits)."""


def read_lfdi(el: etree._Element, name: str, required: bool = False) -> str | None:
    """An LFDI child (hexBinary, leading zeros optional) as 40 upper-case hex digits."""
    value = read_hex(el, name, 20, required)
    return None if value is None else normalise_lfdi(f"{value:X}")


def parse_end_device(doc: etree._Element) -> EndDeviceIn:
    """A posted ``EndDevice``: sFDI required; lFDI, deviceCategory, enabled, postRate optional."""
    expect_root(doc, "EndDevice")
    sfdi = read_uint(doc, "sFDI", SFDI_BITS, required=True)
    assert sfdi is not None
    return EndDeviceIn(
        sfdi=sfdi,
        lfdi=read_lfdi(doc, "lFDI"),
        device_category=read_hex(doc, "deviceCategory", 4),
        enabled=read_bool(doc, "enabled"),
        post_rate=read_uint(doc, "postRate", 32),
    )


def _fill_end_device(el: etree._Element, d: EndDeviceView) -> None:
    href = f"/edev/{d.id}"
    link(el, "DERListLink", f"{href}/der", 1)
    if d.device_category is not None:
        leaf(el, "deviceCategory", hex_text(d.device_category, 4))
    link(el, "DeviceInformationLink", f"{href}/di")
    leaf(el, "lFDI", d.lfdi)
    leaf(el, "sFDI", d.sfdi)
    leaf(el, "changedTime", d.changed_time)
    leaf(el, "enabled", d.enabled)
    link(el, "FunctionSetAssignmentsListLink", f"{href}/fsa", 1)
    leaf(el, "postRate", d.post_rate)
    link(el, "RegistrationLink", f"{href}/rg")


def render_end_device(d: EndDeviceView) -> bytes:
    doc = root("EndDevice", f"/edev/{d.id}")
    _fill_end_device(doc, d)
    return serialize(doc)


def render_end_device_list(page: Page[EndDeviceView], poll_rate: int) -> bytes:
    doc = root("EndDeviceList", "/edev", all=page.all, results=len(page.items), pollRate=poll_rate)
    for d in page.items:
        _fill_end_device(node(doc, "EndDevice", f"/edev/{d.id}"), d)
    return serialize(doc)


def render_registration(r: RegistrationView) -> bytes:
    doc = root("Registration", f"/edev/{r.device_id}/rg", pollRate=r.poll_rate)
    leaf(doc, "dateTimeRegistered", r.registered_time)
    leaf(doc, "pIN", r.pin)
    return serialize(doc)


def parse_device_information(doc: etree._Element) -> DeviceInformation:
    """A PUT ``DeviceInformation`` with the schema's required fields (DRLCCapabilities,
    gpsLocation and SupportedLocaleListLink are accepted and not kept)."""
    expect_root(doc, "DeviceInformation")
    lfdi = read_lfdi(doc, "lFDI", required=True)
    values = {
        "mf_date": read_time(doc, "mfDate", required=True),
        "mf_hw_ver": read_str(doc, "mfHwVer", 32, required=True),
        "mf_id": read_uint(doc, "mfID", 32, required=True),
        "mf_model": read_str(doc, "mfModel", 32, required=True),
        "mf_ser_num": read_str(doc, "mfSerNum", 32, required=True),
        "primary_power": read_uint(doc, "primaryPower", 8, required=True),
        "secondary_power": read_uint(doc, "secondaryPower", 8, required=True),
        "sw_act_time": read_time(doc, "swActTime", required=True),
        "sw_ver": read_str(doc, "swVer", 32, required=True),
        "mf_info": read_str(doc, "mfInfo", 32),
        "functions_implemented": read_hex(doc, "functionsImplemented", 8),
    }
    if lfdi is None:
        raise XmlError("DeviceInformation: lFDI is required")
    return DeviceInformation(lfdi=lfdi, **values)  # type: ignore[arg-type]


def render_device_information(device_id: int, i: DeviceInformation) -> bytes:
    doc = root("DeviceInformation", f"/edev/{device_id}/di")
    if i.functions_implemented is not None:
        leaf(doc, "functionsImplemented", hex_text(i.functions_implemented, 8))
    leaf(doc, "lFDI", i.lfdi)
    leaf(doc, "mfDate", i.mf_date)
    leaf(doc, "mfHwVer", i.mf_hw_ver)
    leaf(doc, "mfID", i.mf_id)
    leaf(doc, "mfInfo", i.mf_info)
    leaf(doc, "mfModel", i.mf_model)
    leaf(doc, "mfSerNum", i.mf_ser_num)
    leaf(doc, "primaryPower", i.primary_power)
    leaf(doc, "secondaryPower", i.secondary_power)
    leaf(doc, "swActTime", i.sw_act_time)
    leaf(doc, "swVer", i.sw_ver)
    return serialize(doc)


def _fsa_mrid(device_id: int, fsa_id: int) -> str:
    return hashlib.sha256(f"fsa/{device_id}/{fsa_id}".encode()).hexdigest()[:32].upper()


def _fill_fsa(el: etree._Element, device_id: int, fsa_id: int) -> None:
    """The function sets a device uses: every device gets the campus programs."""
    link(el, "DemandResponseProgramListLink", "/dr")
    link(el, "DERProgramListLink", "/derp")
    link(el, "MessagingProgramListLink", "/msg")
    link(el, "ResponseSetListLink", "/rsps")
    link(el, "TariffProfileListLink", "/tp")
    link(el, "TimeLink", "/tm")
    leaf(el, "mRID", _fsa_mrid(device_id, fsa_id))
    leaf(el, "description", "gtx_ray campus")


def render_fsa(device_id: int, fsa_id: int) -> bytes:
    doc = root("FunctionSetAssignments", f"/edev/{device_id}/fsa/{fsa_id}")
    _fill_fsa(doc, device_id, fsa_id)
    return serialize(doc)


def render_fsa_list(device_id: int, page: Page[int], poll_rate: int) -> bytes:
    doc = root(
        "FunctionSetAssignmentsList",
        f"/edev/{device_id}/fsa",
        all=page.all,
        results=len(page.items),
        pollRate=poll_rate,
    )
    for fsa_id in page.items:
        el = node(doc, "FunctionSetAssignments", f"/edev/{device_id}/fsa/{fsa_id}")
        _fill_fsa(el, device_id, fsa_id)
    return serialize(doc)
