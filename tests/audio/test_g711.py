"""G.711 μ-law / A-law: every code and every PCM16 value against CPython's audioop and ITU table values."""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import pytest

from voxline.audio import g711

ALL_CODES = bytes(range(256))
ALL_PCM16 = np.arange(-32768, 32768, dtype="<i2").tobytes()


@pytest.fixture(scope="module")
def audioop() -> ModuleType:
    # Oracle only (deprecated in 3.11/3.12, removed in 3.13); the package never imports it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module: ModuleType = pytest.importorskip("audioop")
    return module


def test_ulaw_decode_every_code_matches_audioop(audioop: ModuleType) -> None:
    assert g711.ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_every_code_matches_audioop(audioop: ModuleType) -> None:
    assert g711.alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_ulaw_encode_every_pcm16_value_matches_audioop(audioop: ModuleType) -> None:
    assert g711.ulaw_encode(ALL_PCM16) == audioop.lin2ulaw(ALL_PCM16, 2)


def test_alaw_encode_every_pcm16_value_matches_audioop(audioop: ModuleType) -> None:
    assert g711.alaw_encode(ALL_PCM16) == audioop.lin2alaw(ALL_PCM16, 2)


def _decode_one(decode: object, code: int) -> int:
    assert callable(decode)
    out = decode(bytes([code]))
    assert isinstance(out, bytes)
    return int.from_bytes(out, "little", signed=True)


# ITU-T G.711 Table 2 (μ-law): decoder output in 14-bit units; PCM16 = 4x. Codes as transmitted
# (inverted): 0xFF is +0, 0xFE the first positive step, 0xF0 the end of segment 0, 0xEF the start of
# segment 1, 0x80 the largest positive value; 0x00-0x7F are the negative mirror.
ULAW_ITU = {0xFF: 0, 0xFE: 2, 0xF0: 30, 0xEF: 33, 0xE0: 93, 0xDF: 99, 0x81: 7775, 0x80: 8031, 0x7F: 0}
ULAW_ITU |= {0x7E: -2, 0x6F: -33, 0x00: -8031}
# ITU-T G.711 Table 1 (A-law): decoder output in 13-bit units; PCM16 = 8x. Even bits are inverted on
# the line: 0xD5 is the smallest positive value (+1), 0x55 the smallest negative, 0xAA/0x2A the largest.
ALAW_ITU = {0xD5: 1, 0xD4: 3, 0xDA: 31, 0xC5: 33, 0xF5: 66, 0xAA: 4032, 0x55: -1, 0x2A: -4032, 0x45: -33}


@pytest.mark.parametrize(("code", "value"), sorted(ULAW_ITU.items()))
def test_ulaw_decode_matches_itu_table(code: int, value: int) -> None:
    assert _decode_one(g711.ulaw_decode, code) == 4 * value


@pytest.mark.parametrize(("code", "value"), sorted(ALAW_ITU.items()))
def test_alaw_decode_matches_itu_table(code: int, value: int) -> None:
    assert _decode_one(g711.alaw_decode, code) == 8 * value


@pytest.mark.parametrize(
    ("pcm", "ulaw", "alaw"),
    [(0, 0xFF, 0xD5), (-1, 0x7E, 0x55), (32767, 0x80, 0xAA), (-32768, 0x00, 0x2A), (8, 0xFE, 0xD5)],
)
def test_encode_known_values(pcm: int, ulaw: int, alaw: int) -> None:
    sample = pcm.to_bytes(2, "little", signed=True)
    assert g711.ulaw_encode(sample) == bytes([ulaw])
    assert g711.alaw_encode(sample) == bytes([alaw])


def test_decode_then_encode_is_identity_on_codes() -> None:
    # Every code is a reconstruction level, so it encodes back to itself (μ-law's -0 aside).
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES
    expected = bytes(0xFF if c == 0x7F else c for c in ALL_CODES)  # 0x7F (-0) decodes to 0 = 0xFF
    assert g711.ulaw_encode(g711.ulaw_decode(ALL_CODES)) == expected


def test_array_functions_agree_with_bytes_functions() -> None:
    pcm = np.frombuffer(ALL_PCM16, dtype="<i2")
    assert g711.ulaw_encode_array(pcm) == g711.ulaw_encode(ALL_PCM16)
    assert g711.alaw_encode_array(pcm) == g711.alaw_encode(ALL_PCM16)
    assert g711.ulaw_decode_array(ALL_CODES).tobytes() == g711.ulaw_decode(ALL_CODES)
    assert g711.alaw_decode_array(ALL_CODES).tobytes() == g711.alaw_decode(ALL_CODES)


def test_accepts_bytearray_and_memoryview_and_empty() -> None:
    pcm = bytes([1, 2, 3, 4])
    assert g711.ulaw_encode(bytearray(pcm)) == g711.ulaw_encode(pcm)
    assert g711.alaw_decode(memoryview(b"\xd5\x55")) == g711.alaw_decode(b"\xd5\x55")
    assert g711.ulaw_encode(b"") == b"" and g711.ulaw_decode(b"") == b""


@pytest.mark.parametrize("encode", [g711.ulaw_encode, g711.alaw_encode])
def test_odd_length_pcm_is_rejected(encode: object) -> None:
    assert callable(encode)
    with pytest.raises(ValueError, match="pcm"):
        encode(b"\x00\x01\x02")


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_ENCODE_TABLE[0] = 1
    with pytest.raises(ValueError):
        g711.ALAW_DECODE_TABLE[0] = 1
