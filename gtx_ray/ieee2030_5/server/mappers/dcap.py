"""DeviceCapability (/dcap) and Time (/tm) documents."""

from __future__ import annotations

from gtx_ray.ieee2030_5.codec import leaf, link, root, serialize
from gtx_ray.ieee2030_5.server.managers.dcap import DeviceCapabilityView, TimeView

TIME_QUALITY = 4
"""Time.quality: the server's clock is the host clock, assumed NTP-disciplined."""


def render_device_capability(v: DeviceCapabilityView) -> bytes:
    doc = root("DeviceCapability", "/dcap", pollRate=v.poll_rate)
    link(doc, "DemandResponseProgramListLink", "/dr")
    link(doc, "DERProgramListLink", "/derp")
    link(doc, "MessagingProgramListLink", "/msg")
    link(doc, "ResponseSetListLink", "/rsps")
    link(doc, "TariffProfileListLink", "/tp")
    link(doc, "TimeLink", "/tm")
    link(doc, "UsagePointListLink", "/upt", v.usage_points)
    link(doc, "EndDeviceListLink", "/edev", v.end_devices)
    link(doc, "MirrorUsagePointListLink", "/mup", v.mirror_usage_points)
    return serialize(doc)


def render_time(v: TimeView) -> bytes:
    """Time with no daylight saving (dstStart = dstEnd = 0, dstOffset 0)."""
    doc = root("Time", "/tm", pollRate=v.poll_rate)
    leaf(doc, "currentTime", v.now)
    leaf(doc, "dstEndTime", 0)
    leaf(doc, "dstOffset", 0)
    leaf(doc, "dstStartTime", 0)
    leaf(doc, "localTime", v.now + v.tz_offset)
    leaf(doc, "quality", TIME_QUALITY)
    leaf(doc, "tzOffset", v.tz_offset)
    return serialize(doc)
