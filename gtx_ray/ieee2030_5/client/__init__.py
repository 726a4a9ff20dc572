"""The meters' side of IEEE 2030.5: each simulated meter is a client of a 2030.5 server.

One module per job; import what you need from the modules (this package imports nothing):

- ``fleet``: ``MeterClients``, the clients of one meter actor on one event loop thread.
- ``meter_client``: ``MeterClient``, one meter's loop (discover, mirror, poll, recover) and
  ``load_meter_client``.
- ``session``: the HTTP-over-mutual-TLS request layer (bounded reads, status → error, documents,
  hrefs).
- ``discovery``: DeviceCapability, the server's clock, finding or registering the EndDevice, PIN,
  FunctionSetAssignments, and every link found in them (``Links``).
- ``pollers``: the seam for function sets a meter polls (``FunctionSetPoller``, one module each,
  e.g. ``drlc``) and their schedule.
- ``mirror``: the MirrorUsagePoint and posting readings to it.
- ``pending``: the bounded queue of readings waiting to be posted.
- ``documents``: the documents a meter posts and their mRIDs (pure).
- ``quantities``: what is mirrored, its ReadingTypes and the SI ↔ wire values (pure).
- ``backoff``: waits after failures and the rate-limited warning log.
- ``settings``: ``ClientSettings``, the server URL, the meter's credentials.
- ``errors``: what a request can end in besides success.
"""
