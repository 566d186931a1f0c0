"""The settings of --workers: the worker count, RTP port ranges split without overlap and bound in,
each worker's command line (its own SIP port, metrics port, RTP slice; the shared HTTP port)."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from voxline.runtime.server import RuntimeConfig
from voxline.sip.endpoint import SipCallLeg, SipEndpoint
from voxline.workers.launch import worker_spec
from voxline.workers.supervisor import split_port_range


def load(**settings: object) -> RuntimeConfig:
    return RuntimeConfig.load({"scenario": "x.py", **settings}, env={})


def test_workers_is_a_count_or_auto_and_comes_from_the_environment_too() -> None:
    assert load().workers == 1
    assert load(workers="3").workers == 3
    assert load(workers="auto").workers == len(os.sched_getaffinity(0))
    assert RuntimeConfig.load({"scenario": "x.py"}, env={"VOXLINE_WORKERS": "2"}).workers == 2
    for bad, needle in (("0", "workers must be >= 1"), ("many", "workers must be an integer")):
        with pytest.raises(ValueError, match=needle):
            load(workers=bad)


def test_rtp_ports_are_a_range_checked_for_sense() -> None:
    assert load().rtp_ports is None
    assert load(rtp_ports="20000-29999").rtp_ports == (20000, 29999)
    assert load(rtp_ports=[20000, 20010]).rtp_ports == (20000, 20010)
    for bad in ("20000", "30000-20000", "80-90", "a-b", "20000-70000"):
        with pytest.raises(ValueError, match="rtp_ports must be LOW-HIGH"):
            load(rtp_ports=bad)


def test_the_range_is_split_in_slices_that_never_overlap() -> None:
    slices = split_port_range(20000, 29999, 3)
    assert slices == [(20000, 23331), (23332, 26663), (26664, 29995)]
    ports = [set(range(low, high + 1)) for low, high in slices]
    assert not (ports[0] & ports[1]) and not (ports[1] & ports[2]) and not (ports[0] & ports[2])
    with pytest.raises(ValueError, match="too small for 4 workers"):
        split_port_range(20000, 20006, 4)


def test_each_worker_gets_its_own_sip_metrics_and_rtp_and_shares_the_http_port() -> None:
    spec, holder = worker_spec(
        argv=["run", "agent.py", "--workers", "2"],
        count=2,
        sip=("192.0.2.1", 5060),
        sip_transports=("udp", "tcp"),
        sip_allow=("203.0.113.0/24",),
        rtp_host=None,
        http=("127.0.0.1", 0),
        metrics="127.0.0.1:9100",
        metrics_listen=("127.0.0.1", 9100),
        rtp_ports=(20000, 20999),
    )
    try:
        assert holder is not None and spec.http_port == holder.getsockname()[1] != 0
        commands = [spec.command(i) for i in (0, 1)]
        for index, argv in enumerate(commands):
            flags = dict(
                zip(argv[7::2], argv[8::2], strict=False)
            )  # after python -m voxline run agent.py --workers 2
            assert flags["--worker-index"] == str(index)
            assert flags["--sip"] == "127.0.0.1:0" and flags["--sip-allow"] == "127.0.0.1/32"
            assert flags["--rtp-host"] == "192.0.2.1"  # RTP straight between caller and worker
            assert flags["--http"] == f"127.0.0.1:{spec.http_port}"
            assert flags["--metrics"] == f"127.0.0.1:{9100 + index}"
        assert dict(zip(commands[0][7::2], commands[0][8::2], strict=False))["--rtp-ports"] == "20000-20499"
        assert dict(zip(commands[1][7::2], commands[1][8::2], strict=False))["--rtp-ports"] == "20500-20999"
        assert spec.env["VOXLINE_HTTP_REUSE_PORT"] == "1" and spec.env["VOXLINE_SIP_TRANSPORTS"] == "udp"
        assert spec.sip is not None and spec.sip.allow_sources == ("203.0.113.0/24",)
        # The held port is one a worker can listen on with SO_REUSEPORT.
        with socket.socket() as worker:
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(("127.0.0.1", spec.http_port or 0))
            worker.listen()
    finally:
        if holder is not None:
            holder.close()


async def test_rtp_binds_inside_its_range_even_ports_in_turn() -> None:
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        await leg.answer()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1] // 2 * 2
    low, high = (base, base + 9) if base + 9 <= 65535 else (base - 10, base - 1)
    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call, rtp_ports=(low, high)) as uas,
        SipEndpoint("127.0.0.1", 0) as uac,
    ):
        callers = [await uac.call(f"sip:agent@127.0.0.1:{uas.port}") for _ in range(3)]
        await asyncio.wait_for(asyncio.gather(*(c.wait_connected() for c in callers)), 5)
        ports = [leg.rtp.local_addr[1] for leg in legs if leg.rtp is not None]
        for caller in callers:
            caller.hangup()
    assert len(ports) == 3 and len(set(ports)) == 3
    assert all(low <= p <= high and p % 2 == low % 2 for p in ports), (ports, low, high)
    with pytest.raises(ValueError, match="rtp_ports must be"):
        SipEndpoint("127.0.0.1", 0, rtp_ports=(5000, 4000))
