"""IEEE 2030.5-2018 (Smart Energy Profile 2.0) for the simulator, both sides of the wire.

Shared by both sides: ``codec`` (safe XML parsing, typed field readers, the element builder),
``elements`` (elements several documents share: Error, ReadingType, Reading, time periods),
``models`` (value types), ``identity`` (LFDI/SFDI), ``tls`` (the mutual-TLS contexts) and
``pki`` (certificates). ``server`` is the built-in server (routes, resource logic, documents,
registry and its store, TLS fronts); ``client`` is the meters' side (one module per job; its
``fleet`` runs the clients of a meter actor).

Import what you need from the modules: this package imports nothing heavy on its own.
"""
