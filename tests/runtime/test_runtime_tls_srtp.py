"""`voxline run` with SIP over TLS and SRTP against real peers: baresip (its TLS transport and srtp
module, SDES keys) calls the TLS listener (a self-signed certificate made here), the model hears the
caller and the caller records the model; a plain-RTP offer over TLS to an SRTP-required listener
(sipp) gets 488 and opens no model session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.sip.peers import (
    THEIR_TONE,
    baresip_config,
    best_correlation,
    recording,
    run_peer,
)
from tests.sip.tlscert import make_cert
from voxline.audio.g711 import ulaw_decode
from voxline.audio.tone import tone
from voxline.audio.wav import write_wav
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeRealtimeServer, ScriptedResponse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "inbound_agent.py"
MODEL_SIGNAL = b"".join(tone(f, 200, 8000, 0.4) for f in (600.0, 1200.0, 900.0))


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


async def start(fake: FakeRealtimeServer, tmp: Path, **settings: object) -> Runtime:
    cert, key = make_cert(tmp)
    config = RuntimeConfig.load(
        {"scenario": str(EXAMPLE), "sip": "127.0.0.1:0", "sip_tls": "127.0.0.1:0", "sip_cert": str(cert),
         "sip_key": str(key), "http": "off", "idle_session_s": 0.2, **settings},
        env={},
    )  # fmt: skip
    runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test"}))
    runtime.realtime_base_url = fake.base_url
    await runtime.start()
    return runtime


@pytest.mark.peer("baresip")
async def test_baresip_over_tls_with_srtp_talks_to_the_model(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    baresip = require_tool("baresip")
    fake_openai.script(ScriptedResponse(text="Three tones for you.", audio=MODEL_SIGNAL, audio_rate=8000))
    cfg, rec, _ = baresip_config(tmp_path, wav_ms=5000)
    # The caller's tone after the model's greeting (which it would otherwise barge in on).
    write_wav(tmp_path / "in.wav", bytes(2 * 8 * 2500) + THEIR_TONE + bytes(2 * 8 * 1900), 8000)
    with (cfg / "config").open("a") as f:
        f.write("module srtp.so\n")
    # mediaenc=srtp-mand: RTP/SAVP with a=crypto lines, nothing in clear.
    (cfg / "accounts").write_text(
        "<sip:caller@127.0.0.1;transport=tls>;regint=0;audio_codecs=PCMU;mediaenc=srtp-mand\n"
    )
    runtime = await start(fake_openai, tmp_path, srtp="require")
    try:
        assert runtime.sip is not None and runtime.sip.tls_port is not None
        argv = [baresip, "-n", "127.0.0.1", "-f", str(cfg), "-t", "5",
                "-e", f"/dial sip:agent@127.0.0.1:{runtime.sip.tls_port};transport=tls"]  # fmt: skip
        _, out = await run_peer(argv, tmp_path, 20)
        assert "Call established" in out, out
        assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in out, out
    finally:
        await runtime.shutdown(grace_s=0)
    stats = runtime.sip.stats
    assert stats["tls_accepted"] >= 1
    assert len(fake_openai.sessions) == 1
    heard_by_model = ulaw_decode(fake_openai.sessions[0].input_audio)
    assert best_correlation(THEIR_TONE, heard_by_model) > 0.8
    assert best_correlation(MODEL_SIGNAL, recording(rec)) > 0.8


@pytest.mark.peer("baresip")
async def test_plain_rtp_offer_over_tls_to_an_srtp_required_listener_gets_488(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    baresip = require_tool("baresip")
    cfg, _, _ = baresip_config(tmp_path, wav_ms=2000)
    # No srtp module, no mediaenc: a plain RTP/AVP offer, over TLS.
    (cfg / "accounts").write_text("<sip:caller@127.0.0.1;transport=tls>;regint=0;audio_codecs=PCMU\n")
    runtime = await start(fake_openai, tmp_path, srtp="require")
    try:
        assert runtime.sip is not None and runtime.sip.tls_port is not None
        argv = [baresip, "-n", "127.0.0.1", "-f", str(cfg), "-t", "3",
                "-e", f"/dial sip:agent@127.0.0.1:{runtime.sip.tls_port};transport=tls"]  # fmt: skip
        _, out = await run_peer(argv, tmp_path, 20)
        assert "488" in out and "Call established" not in out, out
    finally:
        await runtime.shutdown(grace_s=0)
    assert runtime.sip.stats["tls_accepted"] >= 1
    assert not fake_openai.sessions  # no model session for a refused call
