"""Runs Redis, the two Celery workers and the web server together; Ctrl-C stops them all.

Standard library only. Each child runs in its own session so that a Ctrl-C reaches this
supervisor once, and it stops the children in order: web and workers first (a worker
finishes or requeues its task), Redis last (it writes its data to disk). A child that dies
on its own is started again after a pause that doubles with each quick death (1 s up to a
minute); the others keep running, so a web server crash never costs a training round.
The default worker carries the beat scheduler (-B), which reaps rounds whose worker died.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATA_DIR = Path(os.environ.get("VERNACULAR_DATA_DIR", ROOT / "var"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
WEB_ADDRESS = os.environ.get("VERNACULAR_ADDRESS", "127.0.0.1:8000")
COLORS = {"redis": 31, "worker-default": 33, "worker-gpu": 35, "web": 36}
FIRST_PAUSE, LONGEST_PAUSE = 1.0, 60.0  # seconds before restarting a child that died
STABLE_SECONDS = 60.0  # a child up this long has its pause reset to the first one


def redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def pipe_output(name: str, stream) -> None:
    color = COLORS.get(name, 0)
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"\033[{color}m{name:>15}\033[0m | {line}")
        sys.stdout.flush()


def start(name: str, argv: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    threading.Thread(target=pipe_output, args=(name, proc.stdout), daemon=True).start()
    return proc


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None  # set while it waits to be started again

    def launch(self) -> None:
        self.proc = start(self.name, self.argv)
        self.started_at = time.monotonic()
        self.restart_at = None
        print(f"{self.name} started (pid {self.proc.pid}).", flush=True)

    def tend(self, now: float) -> None:
        """Restart it if it died and its pause is over; never touches the other children."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.launch()
            return
        if self.proc.poll() is None:
            return
        if now - self.started_at >= STABLE_SECONDS:
            self.quick_deaths = 0
        pause = min(LONGEST_PAUSE, FIRST_PAUSE * 2**self.quick_deaths)
        self.quick_deaths += 1
        self.restart_at = now + pause
        print(
            f"{self.name} exited with code {self.proc.returncode}; starting it again in "
            f"{pause:.0f} s. The others keep running.",
            flush=True,
        )


def stop(name: str, proc: subprocess.Popen, grace: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop within {grace:.0f} s; killing it.")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def print_banner(host: str, port: int) -> None:
    """Once the web server answers, say where to log in: last, so it does not scroll away."""
    for _ in range(600):
        if not port_free(host, port):
            break
        time.sleep(0.1)
    else:
        return
    time.sleep(1.0)
    password_file = DATA_DIR / "demo-password"
    lines = [f"Vernacular is running: open http://{host}:{port}"]
    if password_file.exists():
        lines.append(f"Log in as demo, password {password_file.read_text().strip()}")
        lines.append(f"(kept in {password_file}; changed and forgotten it? run")
        lines.append(" .venv/bin/python manage.py changepassword demo)")
    lines.append("Press Ctrl-C to stop everything.")
    width = max(len(line) for line in lines) + 4
    print(
        "\n"
        + "=" * width
        + "\n"
        + "\n".join(f"  {line}" for line in lines)
        + "\n"
        + "=" * width
        + "\n",
        flush=True,
    )


def main() -> int:
    redis = urlsplit(REDIS_URL)
    redis_host, redis_port = redis.hostname or "127.0.0.1", redis.port or 6379
    web_host, _, web_port = WEB_ADDRESS.rpartition(":")
    if not port_free(web_host, int(web_port)):
        print(f"Port {WEB_ADDRESS} is in use. Stop what runs there, or set VERNACULAR_ADDRESS.")
        return 1

    children: list[tuple[str, subprocess.Popen]] = []
    if redis_answers(redis_host, redis_port):
        print(f"Using the Redis already running at {redis_host}:{redis_port}.")
    elif redis_host in ("127.0.0.1", "localhost"):
        redis_dir = DATA_DIR / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port)]
        argv += ["--dir", str(redis_dir), "--appendonly", "yes", "--protected-mode", "yes"]
        children.append(("redis", start("redis", argv)))
        for _ in range(50):
            if redis_answers(redis_host, redis_port):
                break
            time.sleep(0.1)
        else:
            print("Redis did not start; see its output above.")
            stop("redis", children[0][1], 5)
            return 1
    else:
        print(
            f"Redis at {REDIS_URL} does not answer, and it is not local, so it is not started here."
        )
        return 1

    # The demo account and project; its recordings are queued for ingest, so Redis comes first.
    setup = subprocess.run([sys.executable, "manage.py", "demo_setup"], cwd=ROOT)
    if setup.returncode != 0:
        print("Setting up the demo project failed; see above.")
        for name, proc in children:
            stop(name, proc, grace=10)
        return 1

    celery = [str(BIN / "celery"), "-A", "config", "worker", "-l", "info"]
    beat = ["-B", "--schedule", str(DATA_DIR / "celerybeat-schedule")]
    services = [
        Child("worker-default", celery + ["-Q", "default", "-c", "2", "-n", "default@%h", *beat]),
        # Torch work must run in the solo pool: prefork hangs once the parent touched torch.
        Child("worker-gpu", celery + ["-Q", "gpu", "-P", "solo", "-n", "gpu@%h"]),
        Child("web", [sys.executable, "manage.py", "runserver", "--noreload", WEB_ADDRESS]),
    ]
    for child in services:
        child.launch()
    redis_child = None
    if children:  # the Redis started here is tended like the rest
        name, proc = children[0]
        redis_child = Child(name, proc.args, proc=proc, started_at=time.monotonic())
    tended = ([redis_child] if redis_child else []) + services

    stopping = threading.Event()

    def request_stop(signum, frame):
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    threading.Thread(target=print_banner, args=(web_host, int(web_port)), daemon=True).start()
    while not stopping.is_set():
        now = time.monotonic()
        for child in tended:
            child.tend(now)
        stopping.wait(0.5)

    print("\nStopping Vernacular ...")
    for child in reversed(services):
        stop(child.name, child.proc, grace=20)
    if redis_child:
        stop(redis_child.name, redis_child.proc, grace=10)
    print("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
