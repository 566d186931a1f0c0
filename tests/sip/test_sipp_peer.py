"""Real calls from sipp (Debian sip-tester) to a SipEndpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from tests.conftest import require_tool
from voxline.audio import PCMA_8K, Frame
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.rtp import DtmfDigit
from voxline.sip import CallDisconnected, CallFailed, CallFailedError, SipCallLeg, SipEndpoint

from .peers import free_udp_port, run_peer, scenario, sipp_argv, sipp_uas_argv


def _prompt_ulaw(path: Path) -> bytes:
    """1.2 s of a three-tone sequence as raw mu-law (sipp streams raw files only)."""
    pcm = b"".join(tone(f, 400, 8000, 0.4) for f in (440.0, 660.0, 880.0))
    data = ulaw_encode(pcm)
    path.write_bytes(data)
    return data


async def test_sipp_caller_audio_arrives_byte_for_byte(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    prompt = _prompt_ulaw(tmp_path / "prompt.ulaw")
    received: list[Frame] = []
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        leg.on_audio = received.append
        leg.ringing()
        await leg.answer()

    async with SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as ep:
        scen = scenario(tmp_path, "uac_stream.xml", ULAW_FILE=str(tmp_path / "prompt.ulaw"), PAUSE_MS="1800")
        code, out = await run_peer(sipp_argv(sipp, scen, f"127.0.0.1:{ep.port}", "-s", "agent"), tmp_path)
        assert code == 0, out
        assert len(legs) == 1
        leg = legs[0]
        ended = await asyncio.wait_for(leg.wait_ended(), 2)
    assert isinstance(ended, CallDisconnected) and ended.by == "remote"
    assert leg.caller_id == "15551230000" and leg.display_name == "SIPp Caller"
    assert leg.destination == "agent"
    assert leg.headers.get("x-voxline-test") == "stream"
    assert leg.codec == "PCMU"
    got = b"".join(f.data for f in received)
    start = got.find(prompt[:160])
    assert start >= 0, "the prompt's first packet never arrived"
    assert got[start : start + len(prompt)] == prompt


async def test_sipp_cancel_before_answer_gets_487(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    legs: list[SipCallLeg] = []

    def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        leg.ringing()  # and never answer: sipp cancels after the 180

    async with SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as ep:
        scen = scenario(tmp_path, "uac_cancel.xml")
        code, out = await run_peer(sipp_argv(sipp, scen, f"127.0.0.1:{ep.port}"), tmp_path)
        assert code == 0, out
        ended = await asyncio.wait_for(legs[0].wait_ended(), 2)
    assert isinstance(ended, CallFailed)
    assert (ended.status, ended.by) == (487, "remote")
    assert legs[0].codec == "PCMA" and legs[0].audio_format == PCMA_8K  # the offer's first codec


async def test_twenty_concurrent_sipp_calls(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    _prompt_ulaw(tmp_path / "prompt.ulaw")
    frames: dict[str, int] = {}
    ended: list[CallDisconnected | CallFailed] = []

    async def on_call(leg: SipCallLeg) -> None:
        frames[leg.call_id] = 0

        def count(frame: Frame, call_id: str = leg.call_id) -> None:
            frames[call_id] += 1

        leg.on_audio = count
        await leg.answer()
        ended.append(await leg.wait_ended())

    async with SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as ep:
        scen = scenario(tmp_path, "uac_stream.xml", ULAW_FILE=str(tmp_path / "prompt.ulaw"), PAUSE_MS="1500")
        argv = sipp_argv(sipp, scen, f"127.0.0.1:{ep.port}", "-l", "20", "-r", "100", calls=20)
        code, out = await run_peer(argv, tmp_path)
        assert code == 0, out
        for _ in range(50):
            if len(ended) == 20:
                break
            await asyncio.sleep(0.05)
    assert len(frames) == 20
    assert all(isinstance(e, CallDisconnected) and e.by == "remote" for e in ended), ended
    assert len(ended) == 20
    # Each caller streamed 1.2 s = 60 packets; every call received them.
    assert all(n >= 60 for n in frames.values()), frames


async def test_sipp_rfc4733_captures_arrive_as_digits(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    legs: list[SipCallLeg] = []
    digits: list[str] = []

    async def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        leg.add_listener(lambda ev: digits.append(ev.digit) if isinstance(ev, DtmfDigit) else None)
        await leg.answer()

    async with SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as ep:
        scen = scenario(tmp_path, "uac_dtmf.xml", PAUSE_MS="300")
        code, out = await run_peer(sipp_argv(sipp, scen, f"127.0.0.1:{ep.port}"), tmp_path)
        assert code == 0, out
        await asyncio.wait_for(legs[0].wait_ended(), 2)
    assert "".join(digits) == "410*9#"


async def test_outbound_call_to_sipp_with_digest_auth(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    port = free_udp_port()
    scen = scenario(tmp_path, "uas_auth.xml")
    argv = sipp_uas_argv(sipp, scen, port)
    peer = asyncio.create_task(run_peer(argv, tmp_path))
    try:
        async with SipEndpoint("127.0.0.1", 0) as ep:
            await asyncio.sleep(0.3)  # sipp binds its port
            events: list[object] = []
            leg = await ep.call(
                f"sip:callee@127.0.0.1:{port}",
                caller_id="4155550100",
                display_name="Voxline Agent",
                headers={"X-Campaign": "spring-sale"},
                auth=("alice", "secret"),
            )
            leg.add_listener(events.append)
            await asyncio.wait_for(leg.wait_connected(), 5)
            assert leg.codec == "PCMA"
            assert leg.media is not None and leg.media.dtmf_payload_type == 101
            leg.hangup()
            ended = await leg.wait_ended()
            assert isinstance(ended, CallDisconnected) and ended.by == "local"
            code, out = await asyncio.wait_for(peer, 10)
        assert code == 0, out
        assert [type(e).__name__ for e in events][:1] == ["CallProgress"]
    finally:
        peer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await peer  # run_peer kills sipp on cancellation


async def test_outbound_call_with_wrong_password_fails_with_403(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    port = free_udp_port()
    scen = scenario(tmp_path, "uas_auth.xml")
    argv = sipp_uas_argv(sipp, scen, port)
    peer = asyncio.create_task(run_peer(argv, tmp_path))
    try:
        async with SipEndpoint("127.0.0.1", 0) as ep:
            await asyncio.sleep(0.3)
            leg = await ep.call(
                f"sip:callee@127.0.0.1:{port}",
                caller_id="4155550100",
                headers={"X-Campaign": "spring-sale"},
                auth=("alice", "wrong"),
            )
            with pytest.raises(CallFailedError) as info:
                await asyncio.wait_for(leg.wait_connected(), 5)
            assert info.value.status == 403
        await asyncio.wait_for(peer, 10)
    finally:
        peer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await peer  # run_peer kills sipp on cancellation
