"""The ``voxline`` command: ``run`` a scenario, print ``twiml`` for Twilio, ``demo`` the whole thing."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Callable, Sequence

from ._version import __version__
from .logs import LOG_FORMATS, LOG_LEVELS, configure_logging


def _run(args: argparse.Namespace) -> int:
    from .runtime.server import ListenError, Runtime, RuntimeConfig
    from .runtime.session import ScenarioError

    flags = {
        "scenario": args.scenario,
        "backend": args.backend,
        "event_loop": args.event_loop,
        "sip": args.sip,
        "http": args.http,
        "sip_allow": args.sip_allow,
        "sip_trusted_proxy": args.sip_trusted_proxy,
        "register": args.register,
        "sip_auth": args.sip_auth,
        "sip_rate_limit": args.sip_rate_limit,
        "sip_tls": args.sip_tls,
        "sip_cert": args.sip_cert,
        "sip_key": args.sip_key,
        "sip_tls_ca": args.sip_tls_ca,
        "srtp": args.srtp,
        "max_calls": args.max_calls,
        "grace_s": args.grace,
        "ready_model_failures": args.ready_model_failures,
        "ready_model_retry_s": args.ready_model_retry,
        "secrets_file": args.secrets,
        "token": args.token,
        "twilio_auth_token": args.twilio_auth_token,
        "public_url": args.public_url,
        "http_trusted_proxies": args.http_trusted_proxy,
        "open_media": True if args.open_media else None,
        "rtp_host": args.rtp_host,
        "log_format": args.log_format,
        "log_level": args.log_level,
        "metrics": args.metrics,
        "open_metrics": True if args.open_metrics else None,
        "call_log": args.call_log,
        "otel": True if args.otel else None,
        "workers": args.workers,
        "rtp_ports": args.rtp_ports,
    }
    try:
        config = RuntimeConfig.load(flags, config_file=args.config)
        # The environment or the config file may say how to log: set up again with them. -v on
        # the command line beats a log_level from there; --log-level beats -v.
        configure_logging(
            args.verbosity,
            log_format=config.log_format,
            level=args.log_level or (None if args.verbosity else config.log_level),
        )
        if args.rules and config.backend != "local":
            raise ValueError("--rules is for the embedded backend: add --backend local")
        runtime = Runtime(config)
        if config.backend == "openai" and not runtime.secrets.get("OPENAI_API_KEY"):
            raise ValueError(
                "backend openai needs OPENAI_API_KEY (in the environment or the --secrets file); "
                "--backend local runs the embedded offline backend instead"
            )
        loop_factory = _loop_factory(config.event_loop)
        if config.backend == "local":
            from .local.server import LocalBackendUnavailableError, missing_local_modules

            missing = missing_local_modules()
            if missing:
                raise LocalBackendUnavailableError(missing)
        runtime.check_scenario()
        if config.workers > 1 and args.worker_index is None:
            from .runtime.server import parse_hostport
            from .workers.launch import worker_spec

            spec, http_holder = worker_spec(
                argv=args.argv,
                count=config.workers,
                sip=parse_hostport(config.sip, "sip") if config.sip else None,
                sip_transports=config.sip_transports,
                sip_allow=config.sip_allow,
                rtp_host=config.rtp_host,
                http=parse_hostport(config.http, "http") if config.http else None,
                metrics=str(config.metrics),
                metrics_listen=parse_hostport(config.metrics_listen, "metrics")
                if config.metrics_listen
                else None,
                rtp_ports=config.rtp_ports,
            )
    except (ValueError, ScenarioError, ImportError) as exc:
        print(f"voxline run: {exc}", file=sys.stderr)
        return 2
    if config.workers > 1 and args.worker_index is None:
        from .workers.supervisor import Supervisor, supervise

        def listening(supervisor: Supervisor) -> None:
            sip = (
                f", SIP front {(config.sip or '').rpartition(':')[0]}:{supervisor.sip_port}"
                if config.sip
                else ""
            )
            http = f", HTTP {config.http.rpartition(':')[0]}:{spec.http_port}" if config.http else ""
            print(
                f"voxline {__version__}: supervising {config.workers} workers of "
                f"{config.scenario}{sip}{http}",
                flush=True,
            )

        spec.on_listening = listening
        try:
            return supervise(spec)
        except OSError as exc:
            print(f"voxline run: cannot listen for SIP on {config.sip}: {exc}", file=sys.stderr)
            return 1
        finally:
            if http_holder is not None:
                http_holder.close()

    async def main() -> None:
        backend = None
        if config.backend == "local":
            from .local.server import use_local_backend

            backend = await use_local_backend(
                runtime, rules=args.rules, announce=lambda m: print(m, flush=True)
            )
        try:
            await runtime.start()
            # What start-up allocated lives as long as the process: keep it out of the collector's
            # full passes, which otherwise stall the loop (and every call's audio) for tens of ms.
            gc.freeze()
            serving = asyncio.ensure_future(runtime.serve_forever())
            await asyncio.sleep(0)  # its SIGTERM handler is in place before we say we are running
            sip_host = (config.sip or "").rpartition(":")[0]
            http_host = (config.http or "").rpartition(":")[0]
            sip = f", SIP {sip_host}:{runtime.sip.port}" if runtime.sip else ""
            if runtime.sip is not None and runtime.sip.tls_port is not None:
                sip += f", SIP TLS {(config.sip_tls or '').rpartition(':')[0]}:{runtime.sip.tls_port}"
            http = f", HTTP {http_host}:{runtime.http_port}" if config.http else ""
            metrics_host = (config.metrics_listen or "").rpartition(":")[0]
            metrics = f", metrics {metrics_host}:{runtime.metrics_port}" if runtime.metrics_port else ""
            print(f"voxline {__version__}: running {config.scenario}{sip}{http}{metrics}", flush=True)
            if args.worker_index is not None:
                from .workers.launch import announce_line

                line = announce_line(
                    args.worker_index,
                    sip=("127.0.0.1", runtime.sip.port) if runtime.sip else None,
                    http_port=runtime.http_port,
                    metrics=(metrics_host, runtime.metrics_port) if runtime.metrics_port else None,
                    rtp_ports=config.rtp_ports,
                )
                print(line, flush=True)
            for _ in range(args.start_session):
                runtime.start_session()
            await serving
        finally:
            if backend is not None:
                await backend.close()

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
    except ListenError as exc:
        print(f"voxline run: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"voxline run: cannot listen: {exc}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, SyntaxError, ImportError) as exc:
        # A bad rules file (file:line), espeak-ng or a package of the [local] extra missing.
        from .local.server import setup_error_message

        print(f"voxline run: {setup_error_message(exc)}", file=sys.stderr)
        return 2
    return 0


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``voxline run`` runs on: asyncio's own, or uvloop's (``--event-loop uvloop``)."""
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        raise ImportError("--event-loop uvloop needs uvloop: pip install 'voxline[uvloop]'") from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .demo import DemoOptions, run_browser_demo, run_demo

    options = DemoOptions(
        out=Path(args.out),
        scenario=Path(args.scenario) if args.scenario else None,
        rules=Path(args.rules) if args.rules else None,
        backend=args.backend,
    )
    if args.browser:
        return run_browser_demo(options, args.http)
    return run_demo(options)


def _twiml(args: argparse.Namespace) -> int:
    from .carriers.twiml import connect_stream_twiml

    params = {}
    for pair in args.param or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            print(f"voxline twiml: --param must be NAME=VALUE, not {pair!r}", file=sys.stderr)
            return 2
        params[name] = value
    try:
        print(connect_stream_twiml(args.stream_url, params or None))
    except ValueError as exc:
        print(f"voxline twiml: {exc}", file=sys.stderr)
        return 2
    return 0


def _common_options(*, top: bool) -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (``voxline -v run`` = ``voxline run -v``)."""
    common = argparse.ArgumentParser(add_help=False)
    # After the command's name they land in sub_*, and only when given (SUPPRESS): main merges them.
    prefix = "" if top else "sub_"
    default = None if top else argparse.SUPPRESS
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        dest=f"{prefix}verbose",
        default=0 if top else argparse.SUPPRESS,
        help="more logging (-v: calls, -vv: debug)",
    )
    common.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        type=str.lower,
        dest=f"{prefix}log_format",
        default=default,
        help="log lines as text (default) or JSON objects, one a line",
    )
    common.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.lower,
        dest=f"{prefix}log_level",
        default=default,
        help="log level (wins over -v; default warning, -v info, -vv debug)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxline",
        description="Voice-AI phone calls, bridged to OpenAI.",
        parents=[_common_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"voxline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = [_common_options(top=False)]

    run = sub.add_parser("run", help="answer calls with a scenario file", parents=common)
    run.add_argument("scenario", help="the scenario file (Python, VoxEngine-style)")
    run.add_argument(
        "--backend",
        choices=("openai", "local"),
        help="where Realtime clients connect: OpenAI (default; needs OPENAI_API_KEY) or the embedded "
        "offline backend (local)",
    )
    run.add_argument(
        "--sip",
        help="SIP listen address HOST:PORT for UDP and TCP (default 127.0.0.1:5060; 'off')",
    )
    run.add_argument(
        "--event-loop",
        choices=("asyncio", "uvloop"),
        help="the event loop: asyncio's (default) or uvloop's (the voxline[uvloop] extra)",
    )
    run.add_argument(
        "--sip-allow",
        metavar="CIDRS",
        help="who may send INVITEs: comma-separated IPs/CIDRs, or 'any' (default: this machine only)",
    )
    run.add_argument(
        "--sip-trusted-proxy",
        metavar="CIDRS",
        help="SIP proxies in front (Kamailio): comma-separated IPs/CIDRs whose Via headers tell the "
        "caller's address, which --sip-allow then checks (default: none)",
    )
    run.add_argument(
        "--register",
        action="append",
        metavar="SIP_URI",
        help="register as sip:user@registrar[:port][;transport=tcp][;expires=N] (repeatable); the "
        "password from VOXLINE_REGISTER_PASSWORD (environment or --secrets file) or [[run.register]]",
    )
    run.add_argument(
        "--sip-auth",
        metavar="USER:PASSWORD",
        help="digest-authenticate new INVITEs against these users (comma-separated; better from "
        "VOXLINE_SIP_AUTH in the environment or the --secrets file: a flag shows in ps)",
    )
    run.add_argument(
        "--sip-rate-limit",
        metavar="N/s",
        help="new INVITEs a second per source before 503 (N/s, N/min, off; default: 5/s with "
        "--sip-allow any, else off)",
    )
    run.add_argument(
        "--sip-tls",
        metavar="HOST:PORT",
        help="SIP over TLS listen address (e.g. 127.0.0.1:5061; default: none); needs --sip-cert/--sip-key",
    )
    run.add_argument("--sip-cert", metavar="PEM", help="certificate (chain) of the SIP TLS listener")
    run.add_argument("--sip-key", metavar="PEM", help="private key of the SIP TLS listener")
    run.add_argument(
        "--sip-tls-ca",
        metavar="PEM",
        help="CA certificates outbound sips:/transport=tls calls trust (default: the system's)",
    )
    run.add_argument(
        "--srtp",
        choices=("off", "offer", "require"),
        help="SRTP (SDES keys) of SIP calls: off, offer or require (default: offer on TLS, off on UDP/TCP)",
    )
    run.add_argument("--http", help="HTTP listen address for carrier media (default 127.0.0.1:8080; 'off')")
    run.add_argument("--rtp-host", help="address RTP sockets bind to (default: the SIP host)")
    run.add_argument("--max-calls", help="concurrent calls before SIP 503 / refused streams (100)")
    run.add_argument("--grace", help="seconds running calls get to finish on SIGTERM (30)")
    run.add_argument(
        "--ready-model-failures",
        help="/readyz and SIP OPTIONS say 503 after this many failed Realtime connects in a row (3; 0: off)",
    )
    run.add_argument(
        "--ready-model-retry",
        help="seconds after the last failed Realtime connect until the node reports ready for a try (30)",
    )
    run.add_argument("--secrets", help="dotenv file of NAME=value lines for VoxEngine.get_secret_value")
    run.add_argument("--config", help="TOML file with a [run] table of these settings")
    run.add_argument("--token", help="token carrier media connections must present")
    run.add_argument("--twilio-auth-token", help="Twilio auth token: validates X-Twilio-Signature")
    run.add_argument("--public-url", help="base URL as Twilio sees this server (for signatures)")
    run.add_argument(
        "--http-trusted-proxy",
        metavar="CIDRS",
        help="reverse proxies (comma-separated IPs/CIDRs) whose X-Forwarded-Proto/-Host give the URL "
        "Twilio signed (default: none, the headers are ignored)",
    )
    run.add_argument(
        "--open-media",
        action="store_true",
        help="accept media streams without a token on a non-loopback --http address (unsafe)",
    )
    run.add_argument(
        "--metrics",
        metavar="on|off|HOST:PORT",
        help="Prometheus /metrics: on the HTTP listener (on; the default when --http is on loopback), "
        "off, or a listener of its own (HOST:PORT)",
    )
    run.add_argument(
        "--open-metrics",
        action="store_true",
        help="serve /metrics on a non-loopback address (it shows call volumes and errors)",
    )
    run.add_argument(
        "--call-log",
        metavar="DIR",
        help="write each call's quality record (turns, latencies, barge-ins, RTP, tokens) to DIR as JSON",
    )
    run.add_argument(
        "--otel",
        action="store_true",
        help="OpenTelemetry traces of calls, exported as the OTEL_* variables say (voxline[otel] extra)",
    )
    run.add_argument(
        "--workers",
        metavar="N|auto",
        help="worker processes (1; auto: one per usable core): a supervisor spreads calls over them "
        "(docs/deploy.md)",
    )
    run.add_argument(
        "--rtp-ports",
        metavar="LOW-HIGH",
        help="the UDP port range RTP binds in (default: any port; split between --workers)",
    )
    run.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    run.add_argument(
        "--start-session",
        action="count",
        default=0,
        help="start a session without a call (outbound scenarios)",
    )
    run.add_argument(
        "--rules",
        help="agent rules (.yaml) or responder (.py) of the embedded backend (--backend local)",
    )
    run.set_defaults(func=_run)

    demo = sub.add_parser(
        "demo", help="call the example agent and show the conversation (no key needed)", parents=common
    )
    demo.add_argument("--out", default="voxline-demo", help="where the recording and trace go (voxline-demo)")
    demo.add_argument("--scenario", help="scenario to call (default: examples/inbound_agent.py)")
    demo.add_argument(
        "--backend",
        choices=("local", "openai"),
        default="local",
        help="the embedded offline backend (default) or OpenAI (needs OPENAI_API_KEY)",
    )
    demo.add_argument("--rules", help="agent rules (.yaml) or responder (.py) for the offline backend")
    demo.add_argument(
        "--browser",
        action="store_true",
        help="serve the playground page (a WebRTC call from a browser) instead of the SIP caller",
    )
    demo.add_argument(
        "--http", default="127.0.0.1:8080", help="with --browser: where to serve it (127.0.0.1:8080)"
    )
    demo.set_defaults(func=_demo)

    twiml = sub.add_parser(
        "twiml", help="print the TwiML that connects a Twilio call to voxline", parents=common
    )
    twiml.add_argument("--stream-url", required=True, help="wss://host/twilio (voxline's Twilio endpoint)")
    twiml.add_argument("--param", action="append", help="NAME=VALUE custom parameter (repeatable)")
    twiml.set_defaults(func=_twiml)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a worker of --workers is run with
    args.verbosity = args.verbose + getattr(args, "sub_verbose", 0)
    args.log_format = getattr(args, "sub_log_format", args.log_format)
    args.log_level = getattr(args, "sub_log_level", args.log_level)
    configure_logging(args.verbosity, log_format=args.log_format or "text", level=args.log_level)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
