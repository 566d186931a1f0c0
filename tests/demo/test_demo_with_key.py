"""``voxline demo --backend openai``: no embedded backend; the scenario's client goes where OpenAI
would be (here the fake Realtime server, through ``OPENAI_BASE_URL``), and the call still runs."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest

from tests.conftest import require_tool
from voxline.demo import DemoOptions, run_demo
from voxline.testing import FakeRealtimeServer


async def test_with_a_key_the_demo_talks_to_openai_not_the_embedded_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("espeak-ng")
    async with FakeRealtimeServer(api_keys={"sk-demo-key"}) as openai:
        monkeypatch.setenv("OPENAI_BASE_URL", openai.base_url)
        env = {**os.environ, "OPENAI_API_KEY": "sk-demo-key"}
        shown = io.StringIO()
        options = DemoOptions(out=tmp_path / "out", backend="openai", lines=("what are your opening hours",))
        # The demo runs its own event loop; the fake server answers on this one.
        code = await asyncio.to_thread(run_demo, options, stream=shown, env=env)
        output = shown.getvalue()
        assert code == 0, output
        assert "--backend openai: the agent runs on OpenAI's Realtime API" in output
        assert "embedded offline backend" not in output
        assert output.strip().splitlines()[-1].startswith("voxline demo: 1 turn on the OpenAI backend")
        connection = openai.sessions[0]
        assert connection.headers["Authorization"] == "Bearer sk-demo-key"
        assert len(openai.sessions) == 1
        # The caller's line reached "OpenAI" as G.711 audio and made a voice turn.
        assert connection.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert any(e["type"] == "input_audio_buffer.speech_stopped" for e in connection.sent)
        assert (tmp_path / "out" / "recording.wav").stat().st_size > 8000 * 4
        openai.assert_no_violations()
