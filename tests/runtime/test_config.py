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
    assert config.http is None and config.sip == "127.0.0.1:5060"
    assert config.sip_transports == ("udp",)


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"sip": "localhost"}, "sip must be HOST:PORT"),
        ({"http": "1.2.3.4:99999"}, "http must be HOST:PORT"),
        ({"http": "999.1.1.1:8080"}, "http: '999.1.1.1' is not a valid IPv4 address"),
        ({"sip": "no-such-host.invalid:5060"}, "sip: cannot resolve host 'no-such-host.invalid'"),
        ({"max_calls": 0}, "max_calls must be >= 1, not 0"),
        ({"max_calls": "lots"}, "max_calls must be an integer, not 'lots'"),
        ({"max_calls": 2.5}, "max_calls must be an integer, not 2.5"),
        ({"grace_s": "soon"}, "grace_s must be a number of seconds, not 'soon'"),
        ({"grace_s": -1}, "grace_s must be >= 0, not -1"),
        ({"grace_s": "nan"}, "grace_s must be a finite number"),
        ({"rtp_timeout_s": 0}, "rtp_timeout_s must be > 0"),
        ({"trace": "maybe"}, "trace must be true or false, not 'maybe'"),
        ({"sip": "off", "http": "off"}, "nothing to listen on: sip and http are both off"),
        ({"sip_transports": "udp,sctp"}, "sip_transports must be udp, tcp or both"),
        ({"backend": "azure"}, "backend must be 'openai' or 'local', not 'azure'"),
        ({"sip_allow": "10.0.0.0/8,example"}, "sip_allow: 'example' is not an IP address or network"),
        ({"sip_allow": ""}, "sip_allow must list IP addresses"),
        ({"rtp_host": "300.1.1.1"}, "rtp_host: '300.1.1.1' is not a valid IPv4 address"),
        ({"colour": "red"}, "unknown settings: colour"),
        ({"twilio_batch_ms": "fast"}, "twilio_batch_ms must be an integer"),
        ({"mark_interval_ms": "100ms"}, "mark_interval_ms must be an integer"),
        ({"mark_interval_ms": -20}, "mark_interval_ms must be an int >= 0"),
        ({"twilio_batch_ms": 50}, "twilio_batch_ms must be a positive multiple of 20"),
        ({"ready_model_failures": -1}, "ready_model_failures must be >= 0, not -1"),
        ({"ready_model_failures": "few"}, "ready_model_failures must be an integer, not 'few'"),
        ({"ready_model_retry_s": 0}, "ready_model_retry_s must be > 0"),
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
    assert (args.max_calls, args.start_session) == ("5", 2)  # checked, and named, by RuntimeConfig


def test_the_defaults_listen_on_loopback_and_take_calls_from_this_machine_only() -> None:
    config = RuntimeConfig.load({"scenario": "s.py"}, env={})
    assert (config.sip, config.http) == ("127.0.0.1:5060", "127.0.0.1:8080")
    assert config.sip_allow == ("127.0.0.0/8", "::1")
    assert config.backend == "openai"


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"sip": "0.0.0.0:5060", "http": "off"}, "sip: listening on 0.0.0.0 takes calls from the network"),
        ({"sip": "off", "http": "0.0.0.0:8080"}, "http: listening on 0.0.0.0 lets anyone on the network"),
        ({"sip": "[::]:5060", "http": "off"}, "sip: listening on :: takes calls"),
    ],
)
def test_a_public_listener_without_access_control_is_refused(
    settings: dict[str, object], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        RuntimeConfig.load({"scenario": "s.py", **settings}, env={})


def test_a_public_listener_with_access_control_is_accepted() -> None:
    sip = RuntimeConfig.load(
        {"scenario": "s.py", "sip": "0.0.0.0:5060", "http": "off", "sip_allow": "192.0.2.0/24, 2001:db8::1"},
        env={},
    )
    assert sip.sip_allow == ("192.0.2.0/24", "2001:db8::1")
    anyone = RuntimeConfig.load({"scenario": "s.py", "sip": "0.0.0.0:5060", "sip_allow": "any"}, env={})
    assert anyone.sip_allow is None
    for access in ({"token": "t0k"}, {"twilio_auth_token": "tw"}, {"open_media": "true"}):
        http = RuntimeConfig.load(
            {"scenario": "s.py", "sip": "off", "http": "0.0.0.0:8080", **access}, env={}
        )
        assert http.http == "0.0.0.0:8080"


def test_options_go_before_or_after_the_subcommand() -> None:
    parser = build_parser()
    before = parser.parse_args(["-v", "run", "x.py"])
    after = parser.parse_args(["run", "x.py", "-vv"])
    both = parser.parse_args(["-v", "run", "-v", "x.py"])
    assert before.verbose + getattr(before, "sub_verbose", 0) == 1
    assert after.verbose + getattr(after, "sub_verbose", 0) == 2
    assert both.verbose + getattr(both, "sub_verbose", 0) == 2
    assert parser.parse_args(["run", "x.py", "--backend", "local"]).backend == "local"
    assert parser.parse_args(["demo"]).backend == "local"


def test_readiness_settings_come_from_flags_environment_and_file(tmp_path: Path) -> None:
    assert (RuntimeConfig.load({"scenario": "s.py"}, env={}).ready_model_failures) == 3
    file = tmp_path / "voxline.toml"
    file.write_text("[run]\nready_model_failures = 5\nready_model_retry_s = 12.5\n")
    config = RuntimeConfig.load(
        {"scenario": "s.py"}, env={"VOXLINE_READY_MODEL_FAILURES": "0"}, config_file=str(file)
    )
    assert (config.ready_model_failures, config.ready_model_retry_s) == (0, 12.5)
    args = build_parser().parse_args(
        ["run", "x.py", "--ready-model-failures", "2", "--ready-model-retry", "9"]
    )
    assert (args.ready_model_failures, args.ready_model_retry) == ("2", "9")
