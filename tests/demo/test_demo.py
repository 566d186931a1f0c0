"""``voxline demo`` as CI runs it: a subprocess with no OpenAI key, checked from its outputs.

What the backend understood comes from the runtime's trace; what the caller heard is decoded from
the agent channel of the stereo recording with pocketsphinx and a grammar of Voxy's sentences; the
caller's channel is decoded with a grammar of the prepared lines.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_module, require_tool
from voxline.audio.wav import read_wav

ROOT = Path(__file__).resolve().parents[2]
LINES = ["what are your opening hours", "check my order 1 2 3 4", "goodbye"]
# What Voxy says, turn by turn (examples/agent_rules.yaml with the example scenario's tool result).
AGENT_TURNS = [
    [
        "Hello, this is Voxy from the Maple Street shop. "
        "You can ask about our opening hours, or check an order. How can I help?"
    ],
    [
        "We are open from nine in the morning to six in the evening, Monday to Saturday. "
        "On Sunday we are closed."
    ],
    ["One moment, I am checking order 1 2 3 4.", "Order 1 2 3 4 is shipped."],
    ["Thank you for calling the Maple Street shop. Goodbye!"],
]
FRAME = 160  # 20 ms at 8 kHz
VOICED = 300.0  # mean |sample| of a voiced 20 ms frame


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path, float]:
    require_tool("espeak-ng")
    for module in ("pocketsphinx", "webrtcvad", "yaml", "jsonschema"):
        require_module(module)
    out = tmp_path_factory.mktemp("demo") / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "VOXLINE_TRACE_DIR")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "voxline.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=ROOT,
    )
    return proc, out, time.monotonic() - started


def sentences(text: str) -> list[str]:
    from voxline.local.grammar import normalise

    return [normalise(s) for s in text.replace("!", ".").replace("?", ".").split(".") if normalise(s)]


def segments(channel: np.ndarray, min_gap_ms: int) -> list[tuple[int, int]]:
    """(start, end) sample ranges of sound separated by at least ``min_gap_ms`` of quiet."""
    frames = channel[: channel.size - channel.size % FRAME].reshape(-1, FRAME)
    voiced = np.abs(frames.astype(np.int32)).mean(axis=1) >= VOICED
    out: list[tuple[int, int]] = []
    gap = min_gap_ms // 20
    start = last = None
    for i, v in enumerate(voiced):
        if not v:
            continue
        if start is None:
            start = i
        elif last is not None and i - last > gap:
            out.append((start * FRAME, (last + 1) * FRAME))
            start = i
        last = i
    if start is not None and last is not None:
        out.append((start * FRAME, (last + 1) * FRAME))
    return out


def test_demo_exits_0_in_under_a_minute_with_a_summary(
    demo: tuple[subprocess.CompletedProcess[str], Path, float],
) -> None:
    proc, out, elapsed = demo
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed < 60, f"the demo took {elapsed:.1f} s"
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("voxline demo: 3 turns on the embedded offline backend, 3/3 understood"), last
    assert "the embedded offline backend at ws://127.0.0.1:" in proc.stdout
    assert str(out / "recording.wav") in proc.stdout
    assert "\x1b[" not in proc.stdout  # not a terminal: no colours
    for shown in ('caller   "check my order 1 2 3 4"', "function check_order", "latency", "speech stopped"):
        assert shown in proc.stdout


def test_the_backend_understood_the_caller_and_answered_with_the_rules(
    demo: tuple[subprocess.CompletedProcess[str], Path, float],
) -> None:
    from voxline.local.grammar import normalise

    _, out, _ = demo
    traces = list(out.glob("realtime-*.jsonl"))
    assert len(traces) == 1
    received = [json.loads(line) for line in traces[0].read_text().splitlines()]
    messages = [r["msg"] for r in received if r["dir"] == "in" and isinstance(r.get("msg"), dict)]
    types = [m.get("type") for m in messages]
    heard = [
        m["transcript"]
        for m, t in zip(messages, types, strict=True)
        if t == "conversation.item.input_audio_transcription.completed"
    ]
    assert heard == [normalise(line) for line in LINES]
    said = [
        m["transcript"]
        for m, t in zip(messages, types, strict=True)
        if t == "response.output_audio_transcript.done"
    ]
    assert said == [s for turn in AGENT_TURNS for s in turn]
    calls = [m["item"] for m, t in zip(messages, types, strict=True) if t == "response.output_item.done"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls if c["type"] == "function_call"] == [
        ("check_order", {"order_id": "1234"})
    ]
    summary = json.loads((out / "conversation.json").read_text())
    assert [t["agent_heard"] for t in summary["turns"]] == heard
    assert all(t["latency_ms"] is not None and t["latency_ms"] > 0 for t in summary["turns"])


def test_the_recording_holds_each_voice_on_its_own_channel_saying_the_expected_words(
    demo: tuple[subprocess.CompletedProcess[str], Path, float],
) -> None:
    from voxline.local.asr import Recognizer

    _, out, _ = demo
    wav = read_wav(out / "recording.wav")
    assert (wav.rate, wav.channels) == (8000, 2)
    both = np.frombuffer(wav.pcm, dtype="<i2").reshape(-1, 2)
    caller, agent = both[:, 0].copy(), both[:, 1].copy()

    # The caller's channel: three utterances, and the agent is silent while each one is spoken.
    caller_turns = segments(caller, 700)
    assert len(caller_turns) == len(LINES)
    for start, end in caller_turns:
        assert np.abs(agent[start:end].astype(np.int32)).mean() < VOICED / 4
    # Decoded with 0.6 s of quiet around each turn, like the agent's below: cut tight at the file's
    # 20 ms frames, a turn decoded differently depending on where that grid fell in it (the short
    # "goodbye" came out as "what are" for some alignments of the caller's audio in the file).
    margin = np.zeros(4800, dtype="<i2").tobytes()
    phrases = Recognizer.from_phrases(LINES, input_rate=8000)
    assert [phrases.recognize(margin + caller[s:e].tobytes() + margin).text for s, e in caller_turns] == [
        " ".join(sentences(line)) for line in LINES
    ]

    # The agent's channel: Voxy's four turns are what it holds before, between and after the caller's
    # turns; each is decoded with a grammar whose alternatives are Voxy's four turns. "Voxy" is not in
    # the pronunciation dictionary; "foxy", which is, stands in for it. (The decoder is sensitive to
    # the quiet around a turn: 0.6 s of it decoded all four turns of each of 12 recordings measured.)
    bounds = [0] + [start for start, _ in caller_turns] + [agent.size]
    agent_turns = []
    for begin, end in itertools.pairwise(bounds):
        sounds = segments(agent[begin:end], 700)
        assert sounds, f"the agent said nothing between {begin / 8000:.1f} s and {end / 8000:.1f} s"
        agent_turns.append((begin + sounds[0][0], begin + sounds[-1][1]))
    assert len(agent_turns) == len(AGENT_TURNS)
    expected = [
        " ".join(s.replace("voxy", "foxy") for text in turn for s in sentences(text)) for turn in AGENT_TURNS
    ]
    decoder = Recognizer.from_phrases(expected, input_rate=8000)
    decoded = [decoder.recognize(margin + agent[s:e].tobytes() + margin).text for s, e in agent_turns]
    assert decoded == expected


def test_without_espeak_ng_the_demo_says_which_package_to_install(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PATH"] = str(tmp_path)  # no espeak-ng on it
    proc = subprocess.run(
        [sys.executable, "-m", "voxline.cli", "demo", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert "espeak-ng was not found" in proc.stdout
    assert "apt-get install espeak-ng" in proc.stdout
