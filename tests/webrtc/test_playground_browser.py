"""The playground in a real browser: Debian's chromium, headless, driven by Selenium through
chromedriver, calls ``voxline run examples/inbound_agent.py --backend local`` over WebRTC with a fake
microphone playing espeak-ng speech. The embedded backend recognises the spoken request, the page
hears the answer (its WebAudio energy, reported in the DOM), both sides' transcripts appear, the
caller's speech over the greeting cuts it off (barge-in: the page goes quiet and shows what the model
was told it heard), and a screenshot is kept (``VOXLINE_TEST_ARTIFACTS``, else pytest's tmp_path).

The call runs in a network namespace of its own (``browser_call.py`` under ``unshare --net``): a
browser gathers ICE candidates on every interface and would send media over the machine's own
non-loopback address; there, loopback is all there is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import require_module, require_tool

HERE = Path(__file__).resolve().parent
REQUEST = "what are your opening hours"


@pytest.fixture
def microphone(tmp_path: Path) -> Path:
    """The caller's microphone: 2 s of silence (the greeting starts), the request, then silence."""
    espeak, sox = require_tool("espeak-ng"), require_tool("sox")
    raw = tmp_path / "request.wav"
    subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", str(raw), REQUEST], check=True)
    wav = tmp_path / "microphone.wav"
    subprocess.run(
        [sox, str(raw), "-r", "48000", "-c", "1", "-b", "16", str(wav), "pad", "2.0", "6.0"], check=True
    )
    return wav


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    configured = os.environ.get("VOXLINE_TEST_ARTIFACTS")
    directory = Path(configured) if configured else tmp_path / "artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_a_browser_calls_the_agent_hears_it_and_barges_in(microphone: Path, artifacts: Path) -> None:
    for tool in ("chromium", "chromedriver", "unshare"):
        require_tool(tool)
    for module in ("selenium", "aiortc", "pocketsphinx"):
        require_module(module)
    done = subprocess.run(
        ["unshare", "--net", sys.executable, str(HERE / "browser_call.py"), str(microphone), str(artifacts)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=HERE.parents[1],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in seen, seen
    # The greeting (about 6 s) was cut off by the request 2 s into the microphone: some of it was
    # heard, and the page says how much the model was told.
    assert 500 <= seen["heard_ms"] <= 5000, seen
    assert "the model knows you heard" in seen["truncated_text"]
    # Barge-in cleared the greeting at once: of the agent audio the page's WebAudio analyser would
    # have heard between the caller starting to talk and the next response (the rest of the greeting),
    # little arrived (what was in flight and in the browser's jitter buffer: 120-160 ms here).
    assert seen["barge_in_window_ms"] > 800, seen
    assert seen["barge_in_tail_ms"] < 400, seen
    # The greeting went out as one talkspurt at 20 ms a frame, not a talkspurt a frame (two frames
    # every 20 ms: the browser's buffer grew and a second of it still played after the barge-in).
    assert seen["events"].count("audio.started") <= 8, seen["events"]
    # The embedded backend recognised the request and answered it; the page heard the answer.
    assert any(REQUEST in line for line in seen["caller"]), seen
    assert any("nine in the morning" in line for line in seen["agent"]), seen
    assert seen["voiced-ms"] > 3000 and seen["peak"] > 0.05 and seen["energy"] > 0, seen
    for kind in ("call.connected", "speech.started", "speech.stopped", "truncated", "audio.started"):
        assert kind in seen["events"], (kind, seen["events"])
    assert seen["latencies"], "no per-turn latency shown"
    assert Path(seen["screenshot"]).stat().st_size > 10_000
