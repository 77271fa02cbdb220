"""`make run` end to end, less the installs: migrate, demo account, then Redis, both workers
and the web server under scripts/devstack.py; Ctrl-C stops everything; a second start
finds the same data."""

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Browser:
    """Just enough of a browser: cookies and form posts with the CSRF token."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=20) as response:
            return response.read().decode()

    def post(self, path: str, data: dict) -> str:
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(
            self.base + path, data=body, headers={"Referer": self.base}
        )
        with self.opener.open(request, timeout=20) as response:
            return response.read().decode()


class Stack:
    """scripts/devstack.py running, its output collected line by line as it comes."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "scripts/devstack.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def pid_of(self, name: str) -> list[int]:
        found = re.findall(rf"^{name} started \(pid (\d+)\)\.$", self.output, re.MULTILINE)
        return [int(pid) for pid in found]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return self.output


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
        return True
    except OSError:
        return False


def test_run_serves_the_demo_and_stops_cleanly_and_keeps_data(tmp_path):
    web_port, redis_port = free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env |= {
        "VERNACULAR_DATA_DIR": str(tmp_path),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "VERNACULAR_ADDRESS": f"127.0.0.1:{web_port}",
        "VERNACULAR_DEMO_CLIPS": "10",  # one short demo recording is enough here
        "VERNACULAR_DEMO_FIRST_ROUND": "0",  # its round has a test of its own (test_browser_demo)
    }
    base = f"http://127.0.0.1:{web_port}"
    manage(env, "migrate", "--noinput")

    outputs = []
    for attempt in ("first", "second"):
        stack = Stack(env)
        try:
            wait_until(
                lambda: answers(base + "/accounts/login/"), timeout=90, what="the web server"
            )
            password = (tmp_path / "demo-password").read_text().strip()
            browser = Browser(base)
            browser.get("/accounts/login/")
            projects = browser.post("/accounts/login/", {"username": "demo", "password": password})
            assert "Demo: Swahili" in projects, attempt
            status = browser.get("/status/")
            assert status.count('<span class="status ok">up</span>') == 2, status
            # The demo project holds the synthetic corpus: one recording of 12 utterances.
            recordings = browser.get("/projects/1/recordings/")
            assert recordings.count('data-status="') == 1, recordings
            assert "recording_000.wav" in recordings
            if attempt == "first":
                # One child dies: it is started again, and nothing else is touched.
                [gpu_worker] = stack.pid_of("worker-gpu")
                os.killpg(stack.pid_of("worker-default")[0], signal.SIGKILL)
                wait_until(
                    lambda stack=stack: len(stack.pid_of("worker-default")) == 2,
                    timeout=60,
                    what="a restarted worker",
                )
                wait_until(
                    lambda browser=browser: (
                        browser.get("/status/").count('<span class="status ok">up</span>') == 2
                    ),
                    timeout=90,
                    what="the restarted worker to answer",
                )
                assert "worker-default exited with code" in stack.output
                assert "The others keep running." in stack.output
                assert stack.pid_of("worker-gpu") == [gpu_worker]
                os.kill(gpu_worker, 0)  # still alive
        finally:
            output = stack.stop()
        outputs.append(output)
        assert stack.proc.returncode == 0, output
        assert "Stopped." in output
        assert not answers(base + "/accounts/login/")
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", redis_port)) != 0, "Redis still runs"
        manage(env, "migrate", "--noinput")  # as `make run` does before each start
    # The second start found the account and the recordings, and changed neither.
    assert "Making the demo recordings" in outputs[0]
    assert "Making the demo recordings" not in outputs[1]
    assert "unless you changed it" in outputs[1]
