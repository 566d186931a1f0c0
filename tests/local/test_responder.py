"""The rules responder: Voxy's rules, matching, follow-ups, errors with file and line; Python responders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from voxline.audio import PCMU_8K
from voxline.audio.g711 import ulaw_decode
from voxline.local.grammar import normalise
from voxline.local.responder import (
    FunctionCallSpec,
    ModuleResponder,
    ReplySpec,
    Responder,
    RulesError,
    RulesResponder,
    load_responder,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent_rules.yaml"


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": text}]}


def assistant(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": text}]}


@pytest.fixture(scope="module")
def voxy() -> RulesResponder:
    return RulesResponder.load(EXAMPLE)


# -- Voxy's rules -------------------------------------------------------------------------------------
def test_greeting_when_nothing_was_said(voxy: RulesResponder) -> None:
    reply = voxy.reply([])
    assert reply.kind == "greeting" and "Voxy" in reply.text and reply.function_calls == ()
    system = {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "be nice"}]}
    assert voxy.reply([system]).kind == "greeting"


def test_reprompt_when_asked_again_without_user_input(voxy: RulesResponder) -> None:
    assert voxy.reply([assistant(voxy.greeting)]).kind == "reprompt"


def test_opening_hours(voxy: RulesResponder) -> None:
    reply = voxy.reply([assistant("hi"), user("What are your opening hours?")])
    assert (reply.kind, reply.intent) == ("intent", "opening_hours")
    assert "nine" in reply.text


def test_order_check_calls_the_function_then_follows_up(voxy: RulesResponder) -> None:
    conversation: list[dict[str, Any]] = [assistant(voxy.greeting), user("check my order one two three four")]
    reply = voxy.reply(conversation)
    assert reply.intent == "check_order"
    assert reply.text == "One moment, I am checking order 1 2 3 4."
    assert reply.function_calls == (FunctionCallSpec("check_order", {"order_id": "1234"}),)
    assert reply.function_calls[0].arguments_json() == '{"order_id":"1234"}'
    conversation += [
        assistant(reply.text),
        {
            "type": "function_call",
            "name": "check_order",
            "call_id": "call_1",
            "arguments": '{"order_id":"1234"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": json.dumps({"status": "on its way"})},
    ]
    follow = voxy.reply(conversation)
    assert (follow.kind, follow.intent, follow.text) == (
        "follow_up",
        "check_order",
        "Order 1 2 3 4 is on its way.",
    )


def test_order_without_a_number_asks_for_it(voxy: RulesResponder) -> None:
    assert voxy.match("where is my order").intent == "order_without_number"
    assert voxy.match("I am waiting for a delivery").intent == "order_without_number"  # keyword


def test_keyword_matching_finds_slots_anywhere(voxy: RulesResponder) -> None:
    reply = voxy.match("hi, could you check the status of order number 5 5 1 0 please")
    assert reply.intent == "check_order"
    assert reply.function_calls[0].arguments == {"order_id": "5510"}


def test_fallback(voxy: RulesResponder) -> None:
    for said in ["", "the weather is lovely in spring", "uh"]:
        reply = voxy.reply([user(said)])
        assert reply.kind == "fallback" and reply.text == voxy.fallback


def test_goodbye(voxy: RulesResponder) -> None:
    assert voxy.match("OK bye").intent == "goodbye"
    assert voxy.match("thank you, goodbye!").intent == "goodbye"


async def test_rules_responder_fits_the_protocol(voxy: RulesResponder) -> None:
    assert isinstance(voxy, Responder)
    assert (await voxy.respond([user("when are you open")])).intent == "opening_hours"


def test_every_example_phrase_is_recognised_over_the_phone_line(
    voxy: RulesResponder, speech: Callable[..., bytes], pocketsphinx: None
) -> None:
    """The example agent's phrases must survive espeak-ng -> 8 kHz mu-law -> pocketsphinx."""
    from voxline.local.asr import Recognizer

    vocabulary = voxy.vocabulary
    recognizer = Recognizer.from_phrases(vocabulary.phrases, slots=vocabulary.slots, input_rate=8000)
    for phrase in vocabulary.phrases:
        said = phrase.replace("{order_id}", "one two three four")
        hyp = recognizer.recognize(ulaw_decode(speech(said, PCMU_8K)))
        assert hyp.text == normalise(said), phrase
        assert hyp.phrase == phrase
        # ...and what was recognised leads to the intent that owns the phrase.
        owner = next(i.name for i in voxy.intents if phrase in i.phrases)
        assert voxy.match(hyp.text).intent == owner


def test_vocabulary_grammar(voxy: RulesResponder) -> None:
    jsgf = voxy.vocabulary.jsgf()
    assert "public <utterance> = (" in jsgf
    assert "<slot_order_id> = " in jsgf
    assert "check my order <slot_order_id>" in jsgf


# -- rules files: errors name the file and the line ----------------------------------------------------
GOOD = """\
greeting: Hello
fallback: Sorry?
slots:
  code:
    type: digits
    count: 2
intents:
  - name: code
    phrases: ["my code is {code}"]
    reply: Code {code}.
    function_call:
      name: use_code
      arguments: {code: "{code}", fixed: 3}
    follow_up: Done with {code}, {output}.
"""


def rules_error(tmp_path: Path, text: str) -> RulesError:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as info:
        RulesResponder.load(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}:")
    return info.value


def test_good_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    rules = RulesResponder.load(path)
    reply = rules.match("my code is four two")
    assert reply.function_calls == (FunctionCallSpec("use_code", {"code": "42", "fixed": 3}),)
    conversation = [
        {"type": "function_call", "name": "use_code", "call_id": "c", "arguments": '{"code": "42"}'},
        {"type": "function_call_output", "call_id": "c", "output": "accepted"},
    ]
    assert rules.reply(conversation).text == "Done with 42, accepted."


def test_yaml_syntax_error_line(tmp_path: Path) -> None:
    err = rules_error(tmp_path, "greeting: Hello\nfallback: Sorry\nintents:\n  - name: [unclosed\n")
    assert err.line is not None and err.line >= 4
    assert "invalid YAML" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (GOOD.replace("    reply: Code {code}.", "    replly: Code {code}."), 10, "unknown key 'replly'"),
        (GOOD.replace('["my code is {code}"]', '["my code is {pin}"]'), 9, "{pin}"),
        (GOOD.replace("Code {code}.", "Code {pin}."), 10, "{pin}"),
        (GOOD.replace("count: 2", "count: zero"), 6, "positive integer"),
        (GOOD.replace("type: digits", "type: letters"), 5, "slot type"),
        (GOOD.replace("greeting: Hello\n", ""), None, "greeting"),
        (GOOD.replace("follow_up: Done with {code}, {output}.", "follow_up: Done {nope}"), 14, "{nope}"),
        (GOOD.replace("follow_up: Done with {code}, {output}.", "follow_up: {output}"), 14, "quote text"),
        (GOOD.replace("name: use_code", "name: use code"), 12, "function names"),
        (GOOD + "  - name: code\n    phrases: [again]\n    reply: x\n", 15, "duplicate intent name"),
        (GOOD.replace("fallback: Sorry?", "fallback: Sorry?\nfallback: again"), 3, "duplicate key"),
        (GOOD.replace("greeting: Hello", "greeting: Hello {name}"), 1, "placeholders"),
        (GOOD.replace("min_score", "x") + "min_score: 2\n", 15, "min_score"),
        ("- just\n- a list\n", 1, "expected a mapping"),
    ],
)
def test_semantic_errors_name_the_line(tmp_path: Path, text: str, line: int | None, fragment: str) -> None:
    err = rules_error(tmp_path, text)
    assert fragment in str(err)
    if line is not None:
        assert err.line == line, str(err)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        RulesResponder.load(tmp_path / "missing.yaml")


def test_follow_up_needs_a_function_call(tmp_path: Path) -> None:
    text = "greeting: Hi\nfallback: Eh?\nintents:\n  - name: a\n    phrases: [hello]\n"
    text += "    reply: Hi\n    follow_up: x\n"
    err = rules_error(tmp_path, text)
    assert err.line == 7 and "function_call" in str(err)


# -- Python responders ---------------------------------------------------------------------------------
async def test_module_responder_sync_and_async(tmp_path: Path) -> None:
    sync_file = tmp_path / "brain.py"
    sync_file.write_text(
        "PHRASES = ['hello', 'goodbye']\n"
        "def respond(conversation):\n"
        "    if not conversation:\n"
        "        return 'Welcome!'\n"
        "    return {'text': 'Calling.', 'function_calls': [{'name': 'f', 'arguments': {'x': 1}}]}\n"
    )
    brain = load_responder(sync_file)
    assert isinstance(brain, ModuleResponder) and isinstance(brain, Responder)
    assert brain.vocabulary is not None and brain.vocabulary.phrases == ("hello", "goodbye")
    assert await brain.respond([]) == ReplySpec("Welcome!")
    reply = await brain.respond([user("x")])
    assert reply.function_calls == (FunctionCallSpec("f", {"x": 1}),)

    async_file = tmp_path / "async_brain.py"
    async_file.write_text("async def respond(conversation):\n    return 'async ' + str(len(conversation))\n")
    async_brain = load_responder(async_file)
    assert async_brain.vocabulary is None
    assert (await async_brain.respond([user("a"), user("b")])).text == "async 2"


async def test_module_responder_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def respond(conversation):\n    return 42\n")
    with pytest.raises(TypeError, match=r"bad\.py.*int"):
        await load_responder(bad).respond([])
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ValueError, match="respond"):
        load_responder(empty)
    with pytest.raises(ValueError, match="yaml"):
        load_responder(tmp_path / "rules.txt")


def test_load_responder_reads_yaml() -> None:
    assert isinstance(load_responder(EXAMPLE), RulesResponder)


def test_the_split_modules_names_are_importable_from_the_responder_module() -> None:
    import voxline.local.replies
    import voxline.local.responder
    import voxline.local.rules

    for module in (voxline.local.replies, voxline.local.rules):
        for name in module.__all__:
            assert getattr(voxline.local.responder, name) is getattr(module, name), name
    before = "FunctionCallSpec Intent ModuleResponder ReplyKind ReplySpec Responder RulesError RulesResponder"
    assert set(f"{before} Vocabulary load_responder".split()) <= set(voxline.local.responder.__all__)
