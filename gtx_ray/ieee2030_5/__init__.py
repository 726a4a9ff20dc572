"""IEEE 2030.5-2018 server: mutual TLS, certificate identity, metering mirror and metering.

Layers (one module per function set in each): ``identity`` and ``pki`` (certificates, LFDI/SFDI);
``codec`` and ``mappers`` (XML ↔ ``models``); ``registry`` (state) and ``managers`` (rules);
``dispatch`` and ``backend`` (how the front reaches the registry); ``api`` (aiohttp routes),
``tls`` and ``server`` (the socket); ``service`` (Ray actors) and ``certs_cli`` (the CLI).

Import what you need from the modules: this package imports nothing heavy on its own.
"""
