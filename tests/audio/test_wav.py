"""WAV reading (every supported sample format, files from sox, corrupt files) and writing."""

from __future__ import annotations

import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_tool
from voxline.audio.g711 import alaw_decode, ulaw_decode
from voxline.audio.tone import tone
from voxline.audio.wav import WavAudio, read_wav, write_wav

PCM_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"WAVE"
    for chunk_id, payload in chunks:
        body += chunk_id + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) & 1)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, extensible: bool = False) -> tuple[bytes, bytes]:
    align = channels * bits // 8
    base = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align, align, bits)
    if extensible:
        base += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + PCM_GUID_TAIL
    return b"fmt ", base


def write(tmp_path: Path, raw: bytes, name: str = "in.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def pcm16(values: list[int]) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def test_write_then_read_round_trip_mono_and_stereo(tmp_path: Path) -> None:
    mono = tone(440.0, 100, 8000)
    write_wav(tmp_path / "mono.wav", mono, 8000)
    assert read_wav(tmp_path / "mono.wav") == WavAudio(mono, 8000, 1)
    stereo = np.column_stack([np.arange(100), -np.arange(100)]).astype("<i2").tobytes()
    write_wav(str(tmp_path / "stereo.wav"), stereo, 44100, channels=2)
    audio = read_wav(str(tmp_path / "stereo.wav"))
    assert audio == WavAudio(stereo, 44100, 2)
    assert audio.frames == 100 and audio.duration_ms == pytest.approx(100 / 44.1)
    with wave.open(str(tmp_path / "stereo.wav")) as w:  # a standard reader agrees
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 44100)
        assert w.readframes(100) == stereo


@pytest.mark.parametrize(
    ("tag", "bits", "payload", "expected"),
    [
        (1, 8, bytes([0, 128, 255, 129]), [-32768, 0, 32512, 256]),
        (1, 16, pcm16([0, -1, 32767, -32768]), [0, -1, 32767, -32768]),
        # 24-bit: rounded to the nearest 16-bit value, the top clipped.
        (
            1,
            24,
            b"".join(v.to_bytes(3, "little", signed=True) for v in [0, 127, 128, -129, 2**23 - 1, -(2**23)]),
            [0, 0, 1, -1, 32767, -32768],
        ),
        (
            1,
            32,
            struct.pack("<5i", 0, 5 << 16, -(2**31), 2**31 - 1, (7 << 16) + 0x8000),
            [0, 5, -32768, 32767, 8],
        ),
        (3, 32, struct.pack("<5f", 0.0, 0.5, -1.0, 1.0, 2.0), [0, 16384, -32768, 32767, 32767]),
        (3, 64, struct.pack("<4d", -0.25, float("nan"), -3.0, 1 / 32768), [-8192, 0, -32768, 1]),
        (7, 8, bytes([0xFF, 0x80, 0x00]), list(np.frombuffer(ulaw_decode(b"\xff\x80\x00"), "<i2"))),
        (6, 8, bytes([0xD5, 0xAA, 0x2A]), list(np.frombuffer(alaw_decode(b"\xd5\xaa\x2a"), "<i2"))),
    ],
)
@pytest.mark.parametrize("extensible", [False, True])
def test_sample_formats_are_converted_to_pcm16(
    tmp_path: Path, tag: int, bits: int, payload: bytes, expected: list[int], extensible: bool
) -> None:
    path = write(tmp_path, riff(fmt_chunk(tag, 1, 16000, bits, extensible), (b"data", payload)))
    assert read_wav(path) == WavAudio(pcm16(expected), 16000, 1)


def test_other_chunks_odd_sizes_and_unknown_data_size(tmp_path: Path) -> None:
    data = pcm16([1, 2, 3, 4])
    raw = riff((b"LIST", b"odd"), fmt_chunk(1, 2, 8000, 16), (b"fact", b"\x02\x00\x00\x00"), (b"data", data))
    assert read_wav(write(tmp_path, raw)) == WavAudio(data, 8000, 2)
    # A streaming writer that never went back to fill in the data size.
    header = riff(fmt_chunk(1, 1, 8000, 16)) + b"data" + struct.pack("<I", 0xFFFFFFFF)
    assert read_wav(write(tmp_path, header + data, "streamed.wav")).pcm == data
    # A partial last frame (a byte of a 3-byte sample) is dropped.
    raw = riff(fmt_chunk(1, 1, 8000, 24), (b"data", b"\x00\x01\x00\x07"))
    assert read_wav(write(tmp_path, raw, "partial.wav")).pcm == pcm16([1])


CORRUPT: list[tuple[bytes, str]] = [
    (b"", "not a WAV file"),
    (b"ID3\x03" + bytes(40), "not a WAV file"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "not a WAV file"),
    (b"RF64\xff\xff\xff\xffWAVEds64", "RF64"),
    (riff((b"data", bytes(4))), "before the 'fmt ' chunk"),
    (riff((b"LIST", bytes(4))), "no 'fmt ' chunk"),
    (riff(fmt_chunk(1, 1, 8000, 16)), "no 'data' chunk"),
    (riff(fmt_chunk(1, 1, 8000, 16), (b"data", bytes(100)))[:-10], "truncated 'data' chunk"),
    (riff((b"fmt ", bytes(10)), (b"data", bytes(4))), "too short"),
    (riff(fmt_chunk(2, 1, 8000, 4), (b"data", bytes(4))), "format tag 0x0002"),
    (riff(fmt_chunk(1, 1, 8000, 12), (b"data", bytes(4))), "12-bit PCM"),
    (riff(fmt_chunk(3, 1, 8000, 16), (b"data", bytes(4))), "16-bit IEEE float"),
    (riff(fmt_chunk(0x55, 1, 8000, 16, extensible=True), (b"data", bytes(4))), "format tag 0x0055"),
    (riff(fmt_chunk(1, 0, 8000, 16), (b"data", bytes(4))), "channel count is 0"),
    (riff(fmt_chunk(1, 1, 0, 16), (b"data", bytes(4))), "sample rate is 0"),
    (
        riff((b"fmt ", struct.pack("<HHIIHH", 1, 2, 8000, 16000, 2, 16)), (b"data", bytes(4))),
        "block align",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), CORRUPT, ids=[reason for _, reason in CORRUPT])
def test_unsupported_or_corrupt_files_name_the_file_and_the_reason(
    tmp_path: Path, raw: bytes, reason: str
) -> None:
    path = write(tmp_path, raw, "broken-prompt.wav")
    with pytest.raises(ValueError, match=reason) as info:
        read_wav(path)
    assert str(path) in str(info.value)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "nope.wav")


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ((b"\x00", 8000), "pcm"),
        ((bytes(6), 8000, 2), "pcm"),
        ((b"", 0), "rate"),
        ((b"", 8000, 0), "channels"),
    ],
)
def test_write_rejects_bad_arguments(tmp_path: Path, args: tuple[object, ...], param: str) -> None:
    with pytest.raises(ValueError, match=param):
        write_wav(tmp_path / "out.wav", *args)  # type: ignore[arg-type]


def sox(*args: str) -> None:
    subprocess.run([require_tool("sox"), *args], check=True, capture_output=True)


@pytest.mark.parametrize(
    ("encoding", "channels"),
    [
        (["-b", "24", "-e", "signed-integer"], 1),  # WAVE_FORMAT_EXTENSIBLE from sox
        (["-b", "32", "-e", "signed-integer"], 2),
        (["-b", "32", "-e", "floating-point"], 2),
        (["-b", "8", "-e", "unsigned-integer"], 1),
        (["-e", "u-law"], 1),
        (["-e", "a-law"], 1),
    ],
)
def test_files_written_by_sox_match_sox_own_16_bit_conversion(
    tmp_path: Path, encoding: list[str], channels: int
) -> None:
    src, ref = str(tmp_path / "src.wav"), str(tmp_path / "ref.wav")
    sox(
        "-n",
        "-r",
        "8000",
        *encoding,
        src,
        "synth",
        "0.1",
        "sine",
        "440",
        "sine",
        "1000",
        "channels",
        str(channels),
    )
    sox(src, "-D", "-b", "16", "-e", "signed-integer", ref)  # -D: no dither, plain rounding
    got, expected = read_wav(src), read_wav(ref)
    assert (got.rate, got.channels, got.frames) == (8000, channels, 800)
    diff = np.frombuffer(got.pcm, "<i2").astype(int) - np.frombuffer(expected.pcm, "<i2").astype(int)
    assert np.max(np.abs(diff)) <= 1
