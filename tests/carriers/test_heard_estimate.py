"""The Twilio heard position between mark echoes, in simulated time.

The server's core (``TwilioMediaStream``) sends model audio paced one 100 ms batch ahead, with marks
every 100 ms; Twilio's player is ``voxline.testing``'s ``PlaybackModel`` (plays at real time from
arrival, echoes a mark once the audio before it has played, after a delay with seeded jitter); the
network delays media on the way out and echoes on the way back. At random barge-in points the
core's estimate is compared with what the player had really played, to the millisecond.
"""

from __future__ import annotations

import base64
import heapq
import json
import random
import statistics
from dataclasses import dataclass, field

import pytest

from voxline.carriers.twilio import Heard, TwilioMediaStream
from voxline.testing.carrier_callers import PlaybackModel

SID = "MZ" + "7" * 32
START = json.dumps({"event": "start", "start": {"streamSid": SID, "callSid": "CA7"}})
SOURCE_OFFSET = 5000  # the sender's own timeline starts elsewhere: the estimate maps to it
BATCH_MS = 100


@dataclass
class Link:
    """One direction of the network: messages arrive ``delay_ms`` after they were sent, in order."""

    delay_ms: float
    queue: list[tuple[float, int, str]] = field(default_factory=list)
    count: int = 0

    def send(self, now: float, text: str) -> None:
        self.count += 1
        heapq.heappush(self.queue, (now + self.delay_ms, self.count, text))

    def arrived(self, now: float) -> list[str]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            out.append(heapq.heappop(self.queue)[2])
        return out


@dataclass
class Call:
    """A simulated call: utterances of model audio with silences between, sent as the runtime's
    playout sends them, heard by a Twilio-like player."""

    down_ms: float
    up_ms: float
    echo_delay_ms: float
    echo_jitter_ms: float
    seed: int
    mark_interval_ms: int = 100
    core: TwilioMediaStream = field(init=False)
    player: PlaybackModel = field(init=False)
    first_echo_ms: float | None = None

    def __post_init__(self) -> None:
        self.core = TwilioMediaStream(chunk_ms=BATCH_MS, mark_interval_ms=self.mark_interval_ms)
        self.core.receive_text(START, 0.0)
        self.core.events_received()
        self.player = PlaybackModel(
            8, mark_delay_ms=self.echo_delay_ms, mark_jitter_ms=self.echo_jitter_ms, seed=self.seed
        )
        self.down, self.up = Link(self.down_ms), Link(self.up_ms)
        rng = random.Random(self.seed)
        # Batch send times: each utterance 1.5-4 s, then 0.3-1.5 s of nothing sent (the player runs dry).
        self.sends: list[float] = []
        t = 200.0
        for _ in range(6):
            batches = rng.randint(15, 40)
            self.sends += [t] + [t + (k - 1) * BATCH_MS for k in range(1, batches)]  # one batch ahead
            t += batches * BATCH_MS + rng.randint(300, 1500)
        self.end_ms = t

    def heard_by_player(self, now: float) -> float:
        """What the player has really played by ``now``, in ms of the outbound stream."""
        return len(self.player.received) / 8 - self.player.buffered_ms(now)

    def step(self, now: float) -> None:
        core = self.core
        while self.sends and self.sends[0] <= now:
            self.sends.pop(0)
            end = core.sent_ms + BATCH_MS
            core.send_audio(b"\x7f" * (BATCH_MS * 8), source_ms=end + SOURCE_OFFSET, now_ms=now)
        deadline = core.next_deadline()
        if deadline is not None and deadline <= now:
            core.tick(now)
        for text in core.data_to_send():
            self.down.send(now, text)
        for text in self.down.arrived(now):
            message = json.loads(text)
            if message["event"] == "media":
                self.player.media(base64.b64decode(message["media"]["payload"]), now)
            elif message["event"] == "mark":
                self.player.mark(message["mark"]["name"], now)
            elif message["event"] == "clear":
                for name in self.player.clear(now):
                    self.up.send(now, json.dumps({"event": "mark", "mark": {"name": name}}))
        for name in self.player.advance(now):
            self.up.send(now, json.dumps({"event": "mark", "mark": {"name": name}}))
        for text in self.up.arrived(now):
            core.receive_text(text, now)
            for event in core.events_received():
                if self.first_echo_ms is None and getattr(event, "acknowledged_ms", None):
                    self.first_echo_ms = now


@dataclass(frozen=True)
class Sample:
    played_ms: float  # what the player had really played
    heard: Heard  # the estimate
    acknowledged_ms: int  # the last echoed mark's position

    @property
    def error(self) -> float:
        return self.played_ms - self.heard.position_ms


def barge_ins(call: Call, count: int, seed: int) -> list[Sample]:
    """The estimate against the truth at ``count`` random moments while audio plays."""
    rng = random.Random(seed)
    points = sorted(rng.uniform(1000, call.end_ms - 500) for _ in range(count * 4))
    out: list[Sample] = []
    now = 0.0
    while now <= call.end_ms and len(out) < count:
        call.step(now)
        while points and points[0] <= now:
            points.pop(0)
            playing = call.player.buffered_ms(now) > 0
            if playing and call.first_echo_ms is not None:
                out.append(Sample(call.heard_by_player(now), call.core.heard(now), call.core.acknowledged_ms))
        now += 1.0
    return out


@pytest.mark.parametrize(
    ("down_ms", "up_ms", "echo_delay_ms", "echo_jitter_ms"),
    [(20.0, 5.0, 5.0, 10.0), (40.0, 10.0, 0.0, 10.0), (0.0, 0.0, 10.0, 5.0), (60.0, 2.0, 2.0, 20.0)],
)
def test_the_heard_estimate_is_within_the_echo_delay_and_never_ahead(
    down_ms: float, up_ms: float, echo_delay_ms: float, echo_jitter_ms: float
) -> None:
    samples: list[Sample] = []
    for seed in range(4):
        samples += barge_ins(Call(down_ms, up_ms, echo_delay_ms, echo_jitter_ms, seed), 10, seed)
    assert len(samples) == 40
    errors = [sample.error for sample in samples]
    # Never over-truncating: the estimate is never ahead of what the player played (int: floor).
    assert min(errors) >= 0
    assert statistics.median(errors) <= 20
    assert max(errors) <= 100  # one mark interval
    assert any(sample.heard.estimated for sample in samples)
    # The estimate maps to the sender's own timeline.
    assert all(sample.heard.source_ms == sample.heard.position_ms + SOURCE_OFFSET for sample in samples)


def test_snapping_to_the_last_echo_is_what_the_estimate_improves_on() -> None:
    """The same calls, answered with the acknowledged position only (what truncation used before)."""
    snapped, estimated = [], []
    for seed in range(4):
        for sample in barge_ins(Call(20.0, 5.0, 5.0, 10.0, seed), 10, seed):
            snapped.append(sample.played_ms - sample.acknowledged_ms)
            estimated.append(sample.error)
    assert min(snapped) >= 0
    assert statistics.median(snapped) > 40  # about half a mark interval plus the echo delay
    assert statistics.median(estimated) < statistics.median(snapped) / 2


def test_the_estimate_stops_at_a_clear_and_starts_again_with_new_audio() -> None:
    call = Call(20.0, 5.0, 5.0, 10.0, 1)
    now = 0.0
    while call.first_echo_ms is None or now < call.first_echo_ms + 250:
        call.step(now)
        now += 1.0
    call.sends = []  # the model stops talking
    heard = call.core.heard(now)
    assert heard.estimated and heard.position_ms > call.core.acknowledged_ms
    call.core.clear(now)
    frozen = call.core.heard(now)
    assert frozen.position_ms == heard.position_ms
    for _ in range(500):  # the player drops the rest: nothing more is heard
        now += 1.0
        call.step(now)
        assert call.core.heard(now) == frozen
    assert call.heard_by_player(now) >= frozen.position_ms  # the estimate was not ahead
    # The next utterance: the estimate follows it from where it starts.
    start = call.core.sent_ms
    call.sends = [now, now, now + 100, now + 200]
    for _ in range(300):
        now += 1.0
        call.step(now)
    heard = call.core.heard(now)
    assert start < heard.position_ms <= call.heard_by_player(now)


def test_each_position_maps_to_its_own_audio_on_the_senders_timeline() -> None:
    core = TwilioMediaStream(chunk_ms=100, mark_interval_ms=100)
    core.receive_text(START, 0.0)
    core.send_audio(b"\x7f" * 800, source_ms=1100, now_ms=0.0)  # stream 0-100 = source 1000-1100
    core.send_audio(b"\x7f" * 800, source_ms=500, now_ms=0.0)  # stream 100-200 = source 400-500
    names = [json.loads(text)["mark"]["name"] for text in core.data_to_send() if '"mark"' in text]
    assert core.heard(50.0) == Heard(0, None, False)  # no echo yet: nothing to go by
    core.receive_text(json.dumps({"event": "mark", "mark": {"name": names[0]}}), 110.0)  # lag 10 ms
    assert core.heard(110.0) == Heard(100, 1100, False)
    assert core.heard(150.0) == Heard(140, 440, True)
    # Capped at the next mark, whose echo has not come, and that is all that was sent.
    assert core.heard(400.0) == Heard(200, 500, True)
    core.clear(400.0)
    assert core.heard(10_000.0) == Heard(200, 500, True)
