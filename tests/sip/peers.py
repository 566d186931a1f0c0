"""Helpers to run the real SIP peers (sipp, baresip) as subprocesses on loopback."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import numpy as np

from voxline.audio.tone import tone
from voxline.audio.wav import read_wav, write_wav

DATA = Path(__file__).resolve().parent.parent / "data" / "sip"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_sip_port() -> int:
    """A port free on 127.0.0.1 for UDP and TCP, the next one free for TCP too (a TLS listener),
    below the kernel's ephemeral range. A port ``bind(0)`` hands out is in that range, and the next
    outgoing connection of any test may take it before the peer binds it (seen: baresip's SIP/TLS
    bind failing with "Address already in use")."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, low - 2)
        held = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
        held += [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
        try:
            held[0].bind(("127.0.0.1", port))
            held[1].bind(("127.0.0.1", port))
            held[2].bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return port
    raise RuntimeError("no port below the ephemeral range is free for a SIP peer")


def scenario(tmp: Path, name: str, **subs: str) -> Path:
    """A copy of a sipp scenario from tests/data/sip/sipp with ``__KEY__`` placeholders filled in."""
    text = (DATA / "sipp" / name).read_text()
    for key, value in subs.items():
        text = text.replace(f"__{key}__", value)
    path = tmp / name
    path.write_text(text)
    return path


async def run_peer(argv: list[str], cwd: Path, timeout: float = 15.0) -> tuple[int, str]:
    """Run a peer to completion (killed after ``timeout``); returns (exit code, combined output)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        out = b"(killed after timeout)"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def sipp_argv(
    sipp: str, scenario_file: Path, target: str, *extra: str, calls: int = 1, timeout_s: int = 12
) -> list[str]:
    return [
        sipp,
        "-sf",
        str(scenario_file),
        target,
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-m",
        str(calls),
        "-nostdin",
        "-timeout",
        f"{timeout_s}s",
        "-timeout_error",
        "-trace_err",
        *extra,
    ]


def sipp_uas_argv(sipp: str, scenario_file: Path, port: int, timeout_s: int = 8) -> list[str]:
    """sipp as a callee on 127.0.0.1:``port`` for one call."""
    return [sipp, "-sf", str(scenario_file), "-p", str(port), "-i", "127.0.0.1", "-mi", "127.0.0.1",
            "-mp", str(free_udp_port()), "-m", "1", "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
            "-trace_err"]  # fmt: skip


# What we send: three tones of 150 ms; what baresip sends: a 300 Hz tone after 400 ms of silence.
OUR_SIGNAL = b"".join(tone(f, 150, 8000, 0.4) for f in (500.0, 1100.0, 1700.0))
THEIR_TONE = tone(300.0, 600, 8000, 0.4)


def best_correlation(reference: bytes, recording: bytes) -> float:
    """Pearson correlation of ``reference`` with the best-aligned window of ``recording`` (PCM16)."""
    ref = np.frombuffer(reference, "<i2").astype(np.float64)
    rec = np.frombuffer(recording, "<i2").astype(np.float64)
    if len(rec) < len(ref):
        return 0.0
    n = 1 << int(np.ceil(np.log2(len(rec) + len(ref))))
    xcorr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)[: len(rec) - len(ref) + 1]
    lag = int(np.argmax(xcorr))
    window = rec[lag : lag + len(ref)]
    return float(np.corrcoef(ref, window)[0, 1])


def baresip_config(tmp: Path, wav_ms: int) -> tuple[Path, Path, int]:
    """A baresip config dir: plays in.wav (their tone, then silence), records to rec/."""
    cfg = tmp / "baresip"
    rec = tmp / "rec"
    cfg.mkdir()
    rec.mkdir()
    silence_ms = wav_ms - 400 - 600
    pcm = bytes(2 * 8 * 400) + THEIR_TONE + bytes(2 * 8 * silence_ms)
    write_wav(tmp / "in.wav", pcm, 8000)
    port = free_sip_port()
    (cfg / "config").write_text(
        "\n".join(
            [
                f"sip_listen 127.0.0.1:{port}",
                "audio_player aubridge,nil",
                "audio_alert aubridge,nil",
                f"audio_source aufile,{tmp / 'in.wav'}",
                "module_path /usr/lib/baresip/modules",
                "module stdio.so",
                "module g711.so",
                "module aufile.so",
                "module aubridge.so",
                "module sndfile.so",
                "module_app account.so",
                "module_app menu.so",
                f"snd_path {rec}",
                "",
            ]
        )
    )
    (cfg / "accounts").write_text("<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
    return cfg, rec, port


def baresip_argv(baresip: str, cfg: Path, target_port: int, quit_after_s: int) -> list[str]:
    # -n 127.0.0.1: otherwise baresip advertises the host's external address in its SDP.
    return [baresip, "-n", "127.0.0.1", "-f", str(cfg), "-e", f"/dial sip:agent@127.0.0.1:{target_port}",
            "-t", str(quit_after_s)]  # fmt: skip


def recording(rec: Path) -> bytes:
    files = sorted(rec.glob("dump-*-dec.wav"))
    assert files, f"baresip recorded nothing in {rec}"
    wav = read_wav(files[0])
    assert wav.rate == 8000 and wav.channels == 1
    return wav.pcm
