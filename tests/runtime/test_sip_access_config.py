"""The settings of registration and inbound access control: flags, environment, TOML, secrets file;
bad values named; the rate limit's default by the allowlist."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxline.cli import build_parser
from voxline.runtime.server import OPEN_RATE_LIMIT, Runtime, RuntimeConfig
from voxline.runtime.session import Secrets

SCENARIO = str(Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py")


def load(env: dict[str, str] | None = None, config_file: str | None = None, **flags: object) -> RuntimeConfig:
    return RuntimeConfig.load({"scenario": SCENARIO, **flags}, env=env or {}, config_file=config_file)


def test_register_from_flags_with_the_password_from_the_environment_or_secrets(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["run", "s.py", "--register", "sip:a@10.0.0.1", "--register", "sip:b@pbx.example:5070;expires=60"]
    )
    assert args.register == ["sip:a@10.0.0.1", "sip:b@pbx.example:5070;expires=60"]
    config = load({"VOXLINE_REGISTER_PASSWORD": "pw"}, register=args.register)
    assert [a.aor for a in config.register] == ["sip:a@10.0.0.1", "sip:b@pbx.example:5070"]
    assert config.register[1].expires == 60
    runtime = Runtime(config, Secrets(env={}))
    assert [a.password for a in runtime.accounts] == ["pw", "pw"]
    # From the secrets file when the environment does not say.
    secrets = tmp_path / "secrets.env"
    secrets.write_text("VOXLINE_REGISTER_PASSWORD=from-file\nVOXLINE_SIP_AUTH=bob:pw2\n")
    runtime = Runtime(load(register="sip:a@10.0.0.1"), Secrets(secrets, env={}))
    assert runtime.accounts[0].password == "from-file"
    assert runtime.sip_auth == {"bob": "pw2"}


def test_register_tables_in_toml(tmp_path: Path) -> None:
    toml = tmp_path / "voxline.toml"
    toml.write_text(
        "[run]\nsip_auth = { alice = 'pw' }\n"
        "[[run.register]]\naor = 'sip:100@pbx.example'\npassword = 'one'\nexpires = 120\n"
        "[[run.register]]\nuser = '200'\nregistrar = '10.0.0.5:5080'\npassword = 'two'\ntransport = 'tcp'\n"
    )
    config = load(config_file=str(toml))
    first, second = config.register
    assert (first.aor, first.password, first.expires) == ("sip:100@pbx.example", "one", 120)
    assert (second.aor, second.transport, second.target) == (
        "sip:200@10.0.0.5:5080",
        "tcp",
        ("10.0.0.5", 5080),
    )
    assert config.sip_auth == {"alice": "pw"}


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"register": "sip:10.0.0.1"}, "register"),
        ({"register": [{"aor": "sip:a@h", "colour": "red"}]}, "unknown keys"),
        ({"register": ["sip:a@h", "sip:a@h"]}, "twice"),
        ({"register": "sip:a@h;transport=tcp", "sip_transports": "udp"}, "sip_transports"),
        ({"register": "sip:a@h", "sip": "off"}, "SIP is off"),
        ({"register": "sip:a@h", "workers": 2}, "workers"),
        ({"register_retry_s": 0}, "register_retry_s"),
        ({"sip_auth": "alice"}, "user:password"),
        ({"sip_auth": "alice:"}, "sip_auth"),
        ({"sip_auth_algorithms": "MD4"}, "sip_auth_algorithms"),
        ({"sip_rate_limit": "fast"}, "sip_rate_limit"),
        ({"sip_rate_limit": "-1/s"}, "sip_rate_limit"),
        ({"sip_rate_limit": "5/s", "sip_rate_burst": 0}, "sip_rate_burst"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        load(**settings)


def test_rate_limit_default_follows_the_allowlist() -> None:
    assert load().sip_rate_limit is None  # an allowlist (this machine): no limit needed
    assert load(sip="0.0.0.0:5060", sip_allow="any").sip_rate_limit == OPEN_RATE_LIMIT
    assert load(sip="0.0.0.0:5060", sip_allow="any", sip_rate_limit="off").sip_rate_limit is None
    assert load(sip_rate_limit="120/min").sip_rate_limit == 2.0
    assert load({"VOXLINE_SIP_RATE_LIMIT": "3"}).sip_rate_limit == 3.0
    args = build_parser().parse_args(["run", "s.py", "--sip-rate-limit", "4/s", "--sip-auth", "a:b"])
    assert (args.sip_rate_limit, args.sip_auth) == ("4/s", "a:b")
