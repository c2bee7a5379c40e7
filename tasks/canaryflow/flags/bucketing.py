"""flagd's ``fractional`` bucketing, exactly as flagd and the sample service compute it.

A percentage step is only as honest as the users it claims to expose, so the Python side can
say which users a split serves "on" without asking the service.
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF
_INT32_MAX = 2**31 - 1


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32, unsigned."""
    c1, c2 = 0xCC9E2D51, 0x1B873593

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & _MASK

    h, body = seed, len(data) // 4 * 4
    for i in range(0, body, 4):
        k = rotl(int.from_bytes(data[i : i + 4], "little") * c1 & _MASK, 15) * c2 & _MASK
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & _MASK
    if tail := data[body:]:
        h ^= rotl(int.from_bytes(tail, "little") * c1 & _MASK, 15) * c2 & _MASK
    h ^= len(data)
    h = (h ^ (h >> 16)) * 0x85EBCA6B & _MASK
    h = (h ^ (h >> 13)) * 0xC2B2AE35 & _MASK
    return h ^ (h >> 16)


def fractional_ratio(value: str) -> float:
    """``|int32(murmur3(value))| / (2^31 - 1)``: where ``value`` falls in [0, 1]."""
    h = murmur3_32(value.encode())
    signed = h - (1 << 32) if h > _INT32_MAX else h
    return abs(signed) / _INT32_MAX


def fractional_bucket(flag_key: str, targeting_key: str) -> int:
    """The user's bucket 0..99 for weights summing to 100 (flagKey + targetingKey hashed)."""
    return int(fractional_ratio(flag_key + targeting_key) * 100)


def serves_on(flag_key: str, targeting_key: str, percent: float) -> bool:
    """Whether ``fractional [["on", p], ["off", 100 - p]]`` serves this user "on"."""
    return fractional_ratio(flag_key + targeting_key) * 100 < percent
