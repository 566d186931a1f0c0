"""Real calls from baresip (plays a WAV, records what it hears) to a SipEndpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from tests.conftest import require_tool
from voxline.audio import Frame
from voxline.audio.g711 import ulaw_decode, ulaw_encode
from voxline.audio.tone import tone
from voxline.audio.wav import read_wav, write_wav
from voxline.sip import CallDisconnected, SipCallLeg, SipEndpoint

from .peers import free_udp_port, run_peer

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
    port = free_udp_port()
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


async def _serve(
    ep_hangs_up: bool, tmp_path: Path, wav_ms: int, quit_after_s: int
) -> tuple[bytes, bytes, object, str]:
    baresip = require_tool("baresip")
    cfg, rec, _ = baresip_config(tmp_path, wav_ms)
    heard: list[Frame] = []
    result: dict[str, object] = {}

    async def on_call(leg: SipCallLeg) -> None:
        leg.on_audio = heard.append
        await leg.answer()
        await leg.wait_connected()
        leg.send_audio(ulaw_encode(OUR_SIGNAL))
        if ep_hangs_up:
            # Hang up once all of it has really left the socket (plus a little for the peer's buffer).
            while leg.sent_ms < 450:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.6)
            leg.hangup()
        result["ended"] = await leg.wait_ended()

    async with SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as ep:
        _, out = await run_peer(baresip_argv(baresip, cfg, ep.port, quit_after_s), tmp_path, 15)
        for _ in range(40):
            if "ended" in result:
                break
            await asyncio.sleep(0.05)
    assert "ended" in result, out
    assert "Call established" in out, out
    return recording(rec), ulaw_decode(b"".join(f.data for f in heard)), result["ended"], out


async def test_baresip_hears_our_signal_and_we_hang_up(tmp_path: Path) -> None:
    their_rec, our_rec, ended, _ = await _serve(True, tmp_path, wav_ms=6000, quit_after_s=3)
    assert isinstance(ended, CallDisconnected) and ended.by == "local"
    assert best_correlation(ulaw_decode(ulaw_encode(OUR_SIGNAL)), their_rec) > 0.9
    assert best_correlation(THEIR_TONE, our_rec) > 0.9


async def test_baresip_hangs_up_when_its_file_ends(tmp_path: Path) -> None:
    their_rec, our_rec, ended, out = await _serve(False, tmp_path, wav_ms=2000, quit_after_s=4)
    assert isinstance(ended, CallDisconnected) and (ended.by, ended.reason) == ("remote", "BYE")
    assert "audio error (0,end of file)" in out  # it hung up because its file ended, not on quitting
    assert best_correlation(ulaw_decode(ulaw_encode(OUR_SIGNAL)), their_rec) > 0.9
    assert best_correlation(THEIR_TONE, our_rec) > 0.9
