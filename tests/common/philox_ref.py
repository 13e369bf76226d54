"""Independent numpy Philox4x32-10 + dropout mask: the reference both the CPU
twin (tests/cpu) and the CUDA kernels (tests/gpu) must match bit for bit.
Written from the Random123 specification, not from our C++ header."""
import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(seed, groups):
    """seed: python int (64-bit); groups: uint64 array -> uint32 array [n, 4]."""
    groups = np.asarray(groups, np.uint64)
    c0 = (groups & MASK32).astype(np.uint64)
    c1 = (groups >> np.uint64(32)).astype(np.uint64)
    c2 = np.zeros_like(c0)
    c3 = np.zeros_like(c0)
    k0 = np.uint32(seed & 0xFFFFFFFF)
    k1 = np.uint32((seed >> 32) & 0xFFFFFFFF)
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK32
        c0, c1, c2, c3 = (hi1 ^ c1 ^ np.uint64(k0)), lo1, (hi0 ^ c3 ^ np.uint64(k1)), lo0
        with np.errstate(over="ignore"):
            k0 = np.uint32(k0 + W0)
            k1 = np.uint32(k1 + W1)
    return np.stack([c0, c1, c2, c3], -1).astype(np.uint32)


def keep_mask(seed, n, rate):
    """Boolean keep mask of n consecutive elements: element e compares the
    e-th 16-bit half-word (little-endian) of the Philox stream, i.e. half-word
    e % 8 of call e // 8, with round((1 - rate) * 65536)."""
    calls = np.arange((n + 7) // 8, dtype=np.uint64)
    halves = philox4x32_10(seed, calls).reshape(-1).astype("<u4").view("<u2")[:n]
    threshold = int((1.0 - float(np.float32(rate))) * 65536.0 + 0.5)
    return halves.astype(np.uint32) < np.uint32(threshold)


def scale(rate):
    return np.float32(1.0 / (1.0 - float(np.float32(rate))))


def known_answer():
    """Random123's published known-answer vectors for philox4x32-10 with
    counter 0/key 0 and counter=key=all ones are for a 2-word key with full
    4-word counters; ours fixes c2 = c3 = 0, so we check the first:
    ctr=(0,0,0,0), key=(0,0) -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8."""
    return philox4x32_10(0, [0])[0], np.array([0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8],
                                               np.uint32)
