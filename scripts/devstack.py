"""Runs Redis, the two Celery workers and the web server together; Ctrl-C stops them all.

Standard library only. Each child runs in its own session so that a Ctrl-C reaches this
supervisor once, and it stops the children in order: web and workers first (a worker
finishes or requeues its task), Redis last (it writes its data to disk).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATA_DIR = Path(os.environ.get("VERNACULAR_DATA_DIR", ROOT / "var"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
WEB_ADDRESS = os.environ.get("VERNACULAR_ADDRESS", "127.0.0.1:8000")
COLORS = {"redis": 31, "worker-default": 33, "worker-gpu": 35, "web": 36}


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
    children.append(
        (
            "worker-default",
            start("worker-default", celery + ["-Q", "default", "-c", "2", "-n", "default@%h"]),
        )
    )
    # Torch work must run in the solo pool: the prefork pool hangs once the parent touched torch.
    children.append(
        ("worker-gpu", start("worker-gpu", celery + ["-Q", "gpu", "-P", "solo", "-n", "gpu@%h"]))
    )
    children.append(("web", start("web", [sys.executable, "manage.py", "runserver", WEB_ADDRESS])))

    stopping = threading.Event()

    def request_stop(signum, frame):
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    threading.Thread(target=print_banner, args=(web_host, int(web_port)), daemon=True).start()
    exit_code = 0
    while not stopping.is_set():
        for name, proc in children:
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping everything.")
                exit_code = 1
                stopping.set()
                break
        stopping.wait(0.5)

    print("\nStopping Vernacular ...")
    for name, proc in reversed(children):
        if name != "redis":
            stop(name, proc, grace=20)
    for name, proc in children:
        if name == "redis":
            stop(name, proc, grace=10)
    print("Stopped.")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
