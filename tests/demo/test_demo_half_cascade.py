"""``voxline demo --scenario examples/half_cascade.py``: the half-cascade over a real SIP call on the
embedded offline backend. The model answers in text, the espeak-ng player speaks it; the caller's
channel of the recording is checked by pocketsphinx against Voxy's expected turns."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import require_module, require_tool
from tests.demo.test_demo import AGENT_TURNS, segments, sentences
from voxline.audio.wav import read_wav

ROOT = Path(__file__).resolve().parents[2]


def test_the_half_cascade_demo_speaks_every_answer_through_the_player(tmp_path: Path) -> None:
    require_tool("espeak-ng")
    for module in ("pocketsphinx", "webrtcvad", "yaml", "jsonschema"):
        require_module(module)
    from voxline.local.asr import Recognizer

    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "VOXLINE_TRACE_DIR")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxline.cli",
            "demo",
            "--scenario",
            "examples/half_cascade.py",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("voxline demo: 3 turns on the embedded offline backend, 3/3 understood"), last

    # Text mode: the model's answers are text, no audio comes from the Realtime session.
    (trace,) = out.glob("realtime-*.jsonl")
    messages = [json.loads(line)["msg"] for line in trace.read_text().splitlines()]
    types = [m.get("type") for m in messages if isinstance(m, dict)]
    assert "response.output_audio.delta" not in types and "response.output_text.delta" in types
    said = [
        m["text"] for m in messages if isinstance(m, dict) and m.get("type") == "response.output_text.done"
    ]
    assert said == [s for turn in AGENT_TURNS for s in turn]

    # What the caller heard: the player's speech, turn by turn, between the caller's turns.
    wav = read_wav(out / "recording.wav")
    both = np.frombuffer(wav.pcm, dtype="<i2").reshape(-1, 2)
    caller, agent = both[:, 0].copy(), both[:, 1].copy()
    caller_turns = segments(caller, 700)
    assert len(caller_turns) == 3
    bounds = [0] + [start for start, _ in caller_turns] + [agent.size]
    agent_turns = []
    for begin, end in itertools.pairwise(bounds):
        sounds = segments(agent[begin:end], 700)
        assert sounds, f"the player said nothing between {begin / 8000:.1f} s and {end / 8000:.1f} s"
        agent_turns.append((begin + sounds[0][0], begin + sounds[-1][1]))
    expected = [
        " ".join(s.replace("voxy", "foxy") for text in turn for s in sentences(text)) for turn in AGENT_TURNS
    ]
    margin = np.zeros(4800, dtype="<i2").tobytes()
    decoder = Recognizer.from_phrases(expected, input_rate=8000)
    assert [
        decoder.recognize(margin + agent[s:e].tobytes() + margin).text for s, e in agent_turns
    ] == expected
