"""Call sessions: fresh globals per execution, VoxEngine resolved per session, clean termination."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from voxline import AppEvents, VoxEngine
from voxline.context import adopt, current_session
from voxline.runtime.session import Scenario, ScenarioError, Secrets, Session


def write(tmp_path: Path, body: str, name: str = "scenario.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


class Resource:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def close(self) -> None:
        self.log.append(self.name)


def test_each_session_runs_the_scenario_with_fresh_globals(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from voxline import VoxEngine, AppEvents
        counter = []
        def on_start(event):
            counter.append(VoxEngine.session.id)
        VoxEngine.add_event_listener(AppEvents.Started, on_start)
        """,
    )
    scenario = Scenario(path)
    first, second = Session(scenario), Session(scenario)
    assert first.start() and second.start()
    assert first.globals["counter"] == [first.id]
    assert second.globals["counter"] == [second.id]
    assert first.globals is not second.globals


def test_alerting_handlers_see_their_session_and_terminate_closes_everything(tmp_path: Path) -> None:
    closed: list[str] = []
    path = write(
        tmp_path,
        """
        from voxline import VoxEngine, AppEvents
        events = []
        def on_alerting(event):
            events.append(("alerting", event.callerid))
            adopt_resource(event.call)
        VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alerting)
        VoxEngine.add_event_listener(AppEvents.Terminating, lambda e: events.append("terminating"))
        VoxEngine.add_event_listener(AppEvents.Terminated, lambda e: events.append("terminated"))
        """,
    )
    session = Session(Scenario(path))
    ended: list[Session] = []
    session._on_terminated = ended.append
    assert session.start()
    session.globals["adopt_resource"] = adopt
    session.adopt(Resource(closed, "client"))
    session.emit(AppEvents.CallAlerting, call=Resource(closed, "call"), callerid="+100")
    session.terminate()
    session.terminate()  # idempotent
    assert session.globals["events"] == [("alerting", "+100"), "terminating", "terminated"]
    assert closed == ["call", "client"]  # last adopted first
    assert ended == [session]
    assert session.terminated.is_set()


def test_a_raising_handler_ends_only_its_own_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path,
        """
        from voxline import VoxEngine, AppEvents
        def on_alerting(event):
            if event.callerid == "bad":
                raise RuntimeError("scenario bug")
        VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alerting)
        """,
    )
    scenario = Scenario(path)
    bad, good = Session(scenario), Session(scenario)
    bad.start()
    good.start()
    with caplog.at_level(logging.ERROR):
        bad.emit(AppEvents.CallAlerting, callerid="bad")
        good.emit(AppEvents.CallAlerting, callerid="good")
    assert bad.terminating and not good.terminating
    assert "scenario bug" in caplog.text


async def test_an_async_handler_error_ends_its_session(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from voxline import VoxEngine, AppEvents
        async def on_alerting(event):
            raise ValueError("async scenario bug")
        VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alerting)
        """,
    )
    session = Session(Scenario(path))
    session.start()
    session.emit(AppEvents.CallAlerting)
    await asyncio.wait_for(session.terminated.wait(), 1)


def test_top_level_error_fails_the_session_start(tmp_path: Path) -> None:
    session = Session(Scenario(write(tmp_path, "raise RuntimeError('at import')\n")))
    assert session.start() is False
    assert session.terminating


@pytest.mark.parametrize(
    ("body", "needle"), [("def broken(:\n", "syntax error"), (None, "cannot read scenario")]
)
def test_unloadable_scenarios_are_reported_with_the_file(
    tmp_path: Path, body: str | None, needle: str
) -> None:
    path = write(tmp_path, body) if body is not None else tmp_path / "missing.py"
    with pytest.raises(ScenarioError, match=needle) as info:
        Scenario(path)
    assert str(path.name) in str(info.value)


def test_voxengine_outside_a_session_says_so() -> None:
    with pytest.raises(RuntimeError, match="only available inside a call session"):
        VoxEngine.terminate()


def test_secrets_from_environment_then_file(tmp_path: Path) -> None:
    file = tmp_path / "secrets.env"
    file.write_text("# comment\nOPENAI_API_KEY='sk-from-file'\nOTHER=2\n", encoding="utf-8")
    secrets = Secrets(file, env={"OTHER": "from-env"})
    assert secrets.get("OPENAI_API_KEY") == "sk-from-file"
    assert secrets.get("OTHER") == "from-env"
    session = Session(Scenario(write(tmp_path, "")), secrets)
    assert session.get_secret_value("OTHER") == "from-env"
    with pytest.raises(KeyError, match="MISSING"):
        session.get_secret_value("MISSING")


def test_bad_secrets_file_names_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "secrets.env"
    file.write_text("A=1\nnot a pair\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"secrets.env:2"):
        Secrets(file)


def test_secrets_file_takes_dotenv_syntax(tmp_path: Path) -> None:
    file = tmp_path / "secrets.env"
    file.write_text(
        "# the model\n"
        "export OPENAI_API_KEY=sk-exported\n"
        'DOUBLE="two words # not a comment"\n'
        "SINGLE='costs $5 ${HOME}'\n"
        "PLAIN=value # a comment\n"
        "EMPTY=\n"
        "\n"
        'ESCAPED="line\\nbreak"\n',
        encoding="utf-8",
    )
    secrets = Secrets(file, env={})
    assert secrets.get("OPENAI_API_KEY") == "sk-exported"
    assert secrets.get("DOUBLE") == "two words # not a comment"
    assert secrets.get("PLAIN") == "value"
    assert secrets.get("EMPTY") == ""
    assert secrets.get("ESCAPED") == "line\nbreak"
    assert secrets.get("SINGLE") == "costs $5 ${HOME}"  # taken literally, never expanded


def test_a_name_without_a_value_is_named(tmp_path: Path) -> None:
    file = tmp_path / "secrets.env"
    file.write_text("A=1\nLONELY\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"secrets.env:2: LONELY has no value"):
        Secrets(file)


def test_the_start_up_check_runs_the_top_level_once_without_events(tmp_path: Path) -> None:
    ok = write(
        tmp_path,
        "from voxline import AppEvents, VoxEngine\n"
        "VoxEngine.add_event_listener(AppEvents.Started, lambda e: print('STARTED'))\n"
        "VoxEngine.add_event_listener(AppEvents.Terminated, lambda e: print('TERMINATED'))\n",
    )
    Scenario(ok).check()  # no session event is delivered: nothing prints, nothing raises
    bad = tmp_path / "bad.py"
    bad.write_text("import json\n\nVALUE = json.loadz('{}')\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bad.py:3: AttributeError: module 'json' has no attribute"):
        Scenario(bad).check()


def test_the_session_is_what_the_clients_see_through_voxline_context(tmp_path: Path) -> None:
    from voxline.openai.realtime import default_base_url

    seen: list[Any] = []
    services = SimpleNamespace(
        sip=None, realtime_base_url="ws://127.0.0.1:9/v1", trace=True, observers=[lambda s, r: seen.append(r)]
    )
    session = Session(Scenario(write(tmp_path, "")), services=services)
    bare = Session(Scenario(write(tmp_path, "", name="bare.py")))
    assert (session.realtime_base_url, session.trace) == ("ws://127.0.0.1:9/v1", True)
    assert (bare.realtime_base_url, bare.trace) == (None, False)
    token = current_session.set(session)
    try:
        assert default_base_url() == "ws://127.0.0.1:9/v1"
        resource = Resource([], "client")
        adopt(resource)
    finally:
        current_session.reset(token)
    assert session.resources == (resource,) and seen == [resource]
    adopt(Resource([], "outside"))  # no session: nothing to tie it to


def test_the_runtime_names_re_export_the_bottom_modules() -> None:
    import voxline
    import voxline.context
    import voxline.events
    import voxline.runtime.context
    import voxline.runtime.events

    for name in ("Closable", "SessionContext", "adopt", "current_session"):
        assert getattr(voxline.runtime.context, name) is getattr(voxline.context, name), name
    for name in ("AppEvents", "CallEvents"):
        assert getattr(voxline.runtime.events, name) is getattr(voxline.events, name), name
        assert getattr(voxline, name) is getattr(voxline.events, name), name
