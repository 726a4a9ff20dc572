"""The rules of each function set: who may see and change what, decided by the caller's LFDI
(from its certificate, never from a header or the body). One module per function set; each
function takes the registry, the caller's identity, ``now`` (epoch s) and parsed arguments, and
returns a model view or raises a ``ResourceError``. No I/O, no clock reads."""
