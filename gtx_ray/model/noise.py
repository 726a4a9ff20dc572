"""Counter-based random numbers and time-correlated noise.

Values are a pure function of integer keys (seed, stream, meter key, time knot): no generator state,
so any process computes the same numbers for the same keys, in any order, for any subset of meters.
"""

from __future__ import annotations

import hashlib

import numpy as np

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)


def stable_key(text: str) -> int:
    """A 64-bit key for a string that is the same in every process (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (Steele, Lea, Flood 2014) on a uint64 array; wraps modulo 2**64."""
    x = x + _GOLDEN
    x = (x ^ (x >> _U64(30))) * _MIX1
    x = (x ^ (x >> _U64(27))) * _MIX2
    return x ^ (x >> _U64(31))


def hash_keys(*keys: np.ndarray | int) -> np.ndarray:
    """Hash broadcastable integer keys into one uint64 array."""
    with np.errstate(over="ignore"):
        h = np.zeros((), dtype=_U64)
        for key in keys:
            k = np.asarray(key)
            if k.dtype != _U64:
                k = k.astype(np.int64).view(_U64) if k.dtype.kind == "i" else k.astype(_U64)
            h = _splitmix(h ^ k)
        return h


def uniform(*keys: np.ndarray | int) -> np.ndarray:
    """Uniform floats in [0, 1) from the hash of the keys."""
    return (hash_keys(*keys) >> _U64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def normal(*keys: np.ndarray | int) -> np.ndarray:
    """Standard normal floats from the hash of the keys (Box–Muller on two hashed uniforms)."""
    u1 = uniform(*keys, 1)
    u2 = uniform(*keys, 2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def smooth_noise(key: np.ndarray | int, times_s: np.ndarray, period_s: float) -> np.ndarray:
    """Value noise correlated in time: N(0, 1) values on knots every ``period_s`` seconds,
    joined by a smoothstep, evaluated at ``times_s`` (UTC epoch seconds).

    ``key`` is a scalar (one series) or an array of shape (M,) (one series per meter); the result
    has shape ``times_s.shape`` or (T, M) (time-major, the layout of a reading batch). Consecutive
    values differ little when the interval is short against the period, so there are no
    white-noise jumps between 15-minute readings. The variance is 1 on the knots and 0.5 half-way
    between them.
    """
    t = np.asarray(times_s, dtype=np.float64) / period_s
    knot = np.floor(t)
    frac = t - knot
    weight = frac * frac * (3.0 - 2.0 * frac)
    first = int(knot.min()) if knot.size else 0
    knots = np.arange(first, int(knot.max()) + 2 if knot.size else 1, dtype=np.int64)
    key_arr = np.asarray(key)
    if key_arr.ndim == 0:
        values = normal(key_arr, knots)
        idx = (knot - first).astype(np.intp)
        return values[idx] * (1.0 - weight) + values[idx + 1] * weight
    values = normal(knots[:, None], key_arr[None, :])
    idx = (knot - first).astype(np.intp)
    w = weight[:, None]
    return values[idx] * (1.0 - w) + values[idx + 1] * w
