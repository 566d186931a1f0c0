"""`voxline run` settings: flags over VOXLINE_* environment over the config file over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxline.cli import build_parser
from voxline.runtime.server import RuntimeConfig


def test_precedence_flags_environment_file_defaults(tmp_path: Path) -> None:
    file = tmp_path / "voxline.toml"
    file.write_text('[run]\nsip = "127.0.0.1:5070"\nhttp = "127.0.0.1:8081"\nmax_calls = 7\ngrace_s = 3\n')
    env = {"VOXLINE_HTTP": "127.0.0.1:9090", "VOXLINE_MAX_CALLS": "9"}
    config = RuntimeConfig.load({"scenario": "s.py", "max_calls": 11}, env=env, config_file=str(file))
    assert config.sip == "127.0.0.1:5070"  # file
    assert config.http == "127.0.0.1:9090"  # environment over file
    assert config.max_calls == 11  # flag over both
    assert config.grace_s == 3.0
    assert config.rtp_timeout_s == 30.0  # default


def test_listeners_can_be_turned_off_and_transports_chosen() -> None:
    config = RuntimeConfig.load({"scenario": "s.py", "http": "off", "sip_transports": "udp"}, env={})
    assert config.http is None and config.sip == "0.0.0.0:5060"
    assert config.sip_transports == ("udp",)


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"sip": "localhost"}, "sip must be HOST:PORT"),
        ({"http": "1.2.3.4:99999"}, "http must be HOST:PORT"),
        ({"max_calls": 0}, "max_calls"),
        ({"colour": "red"}, "unknown settings: colour"),
        ({"twilio_batch_ms": "fast"}, "twilio_batch_ms must be an integer"),
        ({"mark_interval_ms": "100ms"}, "mark_interval_ms must be an integer"),
        ({"mark_interval_ms": -20}, "mark_interval_ms must be an int >= 0"),
        ({"twilio_batch_ms": 50}, "twilio_batch_ms must be a positive multiple of 20"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        RuntimeConfig.load({"scenario": "s.py", **settings}, env={})


def test_unreadable_config_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\n")
    with pytest.raises(ValueError, match=r"bad\.toml"):
        RuntimeConfig.load({"scenario": "s.py"}, env={}, config_file=str(bad))


def test_cli_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from voxline.cli import main

    assert main(["run", str(tmp_path / "missing.py"), "--sip", "127.0.0.1:0", "--http", "off"]) == 2
    assert "cannot read scenario" in capsys.readouterr().err
    args = build_parser().parse_args(
        ["run", "x.py", "--max-calls", "5", "--start-session", "--start-session"]
    )
    assert (args.max_calls, args.start_session) == (5, 2)
