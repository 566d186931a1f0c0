"""Real calls from baresip (plays a WAV, records what it hears) to a SipEndpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import require_tool
from voxline.audio import Frame
from voxline.audio.g711 import ulaw_decode, ulaw_encode
from voxline.sip import CallDisconnected, SipCallLeg, SipEndpoint

from .peers import OUR_SIGNAL, THEIR_TONE, baresip_argv, baresip_config, best_correlation, recording, run_peer


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
