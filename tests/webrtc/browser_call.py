"""One playground call from headless chromium, run by test_playground_browser.py inside a network
namespace of its own (``unshare --net``): only a loopback interface exists, so the browser, the
WebRTC media and ``voxline run`` cannot reach or even see another address.

``python tests/webrtc/browser_call.py MICROPHONE.wav ARTIFACTS_DIR`` prints one JSON object: what
the page showed (its DOM) at each step, or the step it timed out at.
"""

from __future__ import annotations

import fcntl
import json
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "inbound_agent.py"
TOKEN = "playground-test-token"
REQUEST = "what are your opening hours"


def loopback_up() -> None:
    """``ip link set lo up``, without iproute2: a new network namespace starts with lo down."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, request))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def start_voxline() -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "voxline", "run", str(EXAMPLE), "--backend", "local"]
    command += ["--sip", "off", "--http", "127.0.0.1:0", "--token", TOKEN]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"running .*HTTP 127\.0\.0\.1:(\d+)", line)
        if match:
            return process, int(match.group(1))
    process.kill()
    raise RuntimeError("voxline run did not start:\n" + "".join(seen))


def chromium(microphone: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--window-size=1280,900",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection",  # the only interface there is
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))


def main(microphone: Path, artifacts: Path) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    loopback_up()
    voxline, port = start_voxline()
    result: dict[str, Any] = {"steps": []}
    browser = chromium(microphone)
    t0 = time.monotonic()

    def attr(element_id: str, name: str) -> str | None:
        value = browser.find_element(By.ID, element_id).get_attribute(name)
        return None if value is None else str(value)

    def texts(selector: str) -> list[str]:
        return [e.text for e in browser.find_elements(By.CSS_SELECTOR, selector)]

    def step(name: str, predicate: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                result["steps"].append([name, round(time.monotonic() - t0, 2)])
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {name}")
            time.sleep(0.1)

    try:
        browser.get(f"http://127.0.0.1:{port}/playground?token={TOKEN}&echo=off")
        browser.find_element(By.ID, "call").click()
        step("connected", lambda: attr("status", "data-state") == "connected", 20)
        step("greeting cut off", lambda: texts("#transcript li.truncated"), 30)
        truncated = browser.find_element(By.CSS_SELECTOR, "#transcript li.truncated")
        result["heard_ms"] = int(str(truncated.get_attribute("data-heard-ms")))
        result["truncated_text"] = truncated.text
        # What agent audio still arrived between the barge-in and the next response.
        result["barge_in_tail_ms"] = int(
            step("next response", lambda: attr("rx-stats", "data-barge-in-tail-ms"), 15)
        )
        result["barge_in_window_ms"] = int(attr("rx-stats", "data-barge-in-window-ms") or 0)
        step("caller transcript", lambda: any(REQUEST in t for t in texts("#transcript li.caller")), 30)
        step("answer", lambda: any("nine in the morning" in t for t in texts("#transcript li.agent")), 30)
        step("answer audio", lambda: float(attr("rx-stats", "data-voiced-ms") or 0) > 3000, 20)
        browser.save_screenshot(str(artifacts / "playground.png"))
        result["screenshot"] = str(artifacts / "playground.png")
        browser.find_element(By.ID, "hangup").click()
        step("ended", lambda: attr("status", "data-state") == "ended", 10)
    except TimeoutError as exc:
        result["error"] = str(exc)
    finally:
        result["caller"] = texts("#transcript li.caller")
        result["agent"] = texts("#transcript li.agent")
        events = browser.find_elements(By.CSS_SELECTOR, "#events li")
        result["events"] = [str(e.get_attribute("data-type")) for e in events]
        result["latencies"] = texts("#turns .latency")
        for name in ("voiced-ms", "peak", "energy"):
            result[name] = float(attr("rx-stats", f"data-{name}") or 0)
        browser.save_screenshot(str(artifacts / "playground-last.png"))
        (artifacts / "playground-last.txt").write_text(browser.find_element(By.TAG_NAME, "main").text)
        browser.quit()
        voxline.terminate()
        try:
            voxline.wait(15)
        except subprocess.TimeoutExpired:
            voxline.kill()
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
