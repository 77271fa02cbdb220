"""The web app under load, on loopback: lease time against the number of open clips, and
annotators transcribing through gunicorn at a person's pace or flat out. Prints figures;
asserts nothing. Bounded in requests and seconds.

    .venv/bin/python scripts/benchmark_web.py lease                 # 1k, 10k, 100k clips
    .venv/bin/python scripts/benchmark_web.py queries               # per page and submit
    .venv/bin/python scripts/benchmark_web.py load --annotators 50 --pause 10-20 --seconds 90
    .venv/bin/python scripts/benchmark_web.py load --annotators 50 --pause 0 --seconds 30

Without --database-url it runs on a fresh SQLite file in a temporary folder. With one it
uses that database (give it a scratch one: it is migrated, and its benchmark projects and
users are replaced). The client runs on the same cores as the server, as on a small box.

`load` counts, per request: latency, HTTP errors, and false empty queues ("Nothing to
transcribe right now" while open clips remain); afterwards the database is checked for
double leases (a clip with two transcripts: each annotator only ever submits the lease the
server gave them, so any second transcript means two people held one clip).
"""

import argparse
import http.cookiejar
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "benchmark-pass-7x"
EMPTY = "Nothing to transcribe right now"


def setup_django(database_url: str | None) -> None:
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:  # never the project's own database, whatever the environment says
        os.environ.pop("DATABASE_URL", None)
        os.environ["VERNACULAR_DATA_DIR"] = tempfile.mkdtemp(prefix="vernacular-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_project(name: str, clips: int, *, scored: bool, test_minutes: float = 0):
    """A project with `clips` open clips (rows only: leasing never reads the audio). With no
    test minutes to fill, leases take the training order (by score once scored)."""
    from django.contrib.auth import get_user_model

    from labeling import services
    from labeling.models import Clip, Project, Recording

    owner, _ = get_user_model().objects.get_or_create(username="bench-owner")
    Project.objects.filter(name=name, created_by=owner).delete()
    project = services.project_create(
        name=name,
        language_code="sw",
        alphabet="abcdefghijklmnoprstuvwyz'",
        created_by=owner,
        test_minutes_target=test_minutes,
        dev_minutes_target=0,
    )
    rng = random.Random(0)
    per_recording = 1000
    for first in range(0, clips, per_recording):
        recording = Recording.objects.create(
            project=project,
            original_name=f"r{first}.wav",
            audio=f"recordings/{first}.wav",
            sha256=f"{project.pk}-{first}",
            size_bytes=1,
            duration_seconds=per_recording * 4.0,
            clip_seconds=min(per_recording, clips - first) * 3.0,
            status=Recording.Status.READY,
        )
        Clip.objects.bulk_create(
            [
                Clip(
                    project=project,
                    recording=recording,
                    start_sample=index * 64_000,
                    end_sample=index * 64_000 + 48_000,
                    audio=f"clips/{recording.pk}/{index}.wav",
                    random_key=rng.random(),
                    selection_score=rng.random() if scored else None,
                )
                for index in range(min(per_recording, clips - first))
            ],
            batch_size=2000,
        )
    from django.db import connection

    if connection.vendor == "postgresql":
        # A live database has statistics (autovacuum); one just bulk-loaded has none, and
        # its planner would sort every clip. What a deployment sees is measured.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE labeling_clip")
    return project


def bench_lease(sizes: list[int], repeats: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from labeling import queue
    from labeling.models import Clip

    user, _ = get_user_model().objects.get_or_create(username="bench-leaser")
    print(f"database: {connection.vendor}; {repeats} leases per size, each given back after")
    print(f"{'open clips':>10}  {'order':<9}  {'median ms':>9}  {'p95 ms':>7}")
    # "test draw": the test set still wants minutes; "random": train order before any
    # scoring run; "scored": train order by the latest scores.
    for size in sizes:
        for order, scored, test_minutes in (
            ("test draw", False, 10_000),
            ("random", False, 0),
            ("scored", True, 0),
        ):
            project = make_project(
                f"benchmark-lease-{size}", size, scored=scored, test_minutes=test_minutes
            )
            times = []
            for _ in range(repeats + 3):
                started = time.perf_counter()
                clip = queue.clip_lease_next(project=project, user=user)
                times.append((time.perf_counter() - started) * 1000)
                Clip.objects.filter(pk=clip.pk).update(
                    lease_user=None, lease_token=None, lease_expires_at=None
                )
            times = sorted(times[3:])  # the first leases warm the caches
            p95 = times[int(0.95 * (len(times) - 1))]
            print(f"{size:>10,}  {order:<9}  {statistics.median(times):>9.1f}  {p95:>7.1f}")
            project.delete()


def bench_queries(clips: int) -> None:
    """Queries and in-process time of one lease page and one submit (Django's test client)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    project = make_project("benchmark-queries", clips, scored=True)
    user, _ = get_user_model().objects.get_or_create(username="bench-counter")
    project.memberships.get_or_create(user=user, defaults={"role": "annotator"})
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    annotate = f"/projects/{project.pk}/annotate/"
    print(f"database: {connection.vendor}; {clips:,} open clips")
    body = client.get(annotate).content.decode()  # warm
    for kind in ("lease page", "submit"):
        times, counts = [], []
        for _ in range(20):
            clip_id, lease = WORKSPACE.search(body).groups()
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                if kind == "lease page":
                    body = client.get(annotate).content.decode()
                else:
                    url = f"/projects/{project.pk}/annotate/{clip_id}/submit/"
                    data = {"lease_token": lease, "text": "habari yako"}
                    body = client.post(url, data, headers={"HX-Request": "true"}).content.decode()
                times.append((time.perf_counter() - started) * 1000)
            counts.append(len(queries))
        print(
            f"  {kind:<10} {statistics.median(counts):.0f} queries, "
            f"median {statistics.median(times):.1f} ms of work"
        )
    project.delete()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Annotator:
    """One person's browser: a session cookie, the CSRF token, htmx submits."""

    def __init__(self, base: str, username: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.username = username

    def request(self, path: str, data: dict | None = None, htmx: bool = False) -> str:
        headers = {"Referer": self.base + "/"}
        body = None
        if data is not None:
            token = next(c.value for c in self.jar if c.name == "csrftoken")
            body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        if htmx:
            headers["HX-Request"] = "true"
        request = urllib.request.Request(self.base + path, data=body, headers=headers)
        with self.opener.open(request, timeout=30) as response:
            return response.read().decode()

    def log_in(self) -> None:
        self.request("/accounts/login/")
        self.request("/accounts/login/", {"username": self.username, "password": PASSWORD})


WORKSPACE = re.compile(r'data-clip="(\d*)" data-lease="([0-9a-f-]*)"')


def bench_load(args) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Count

    from labeling.models import Clip, Transcript

    project = make_project("benchmark-load", args.clips, scored=True)
    User = get_user_model()
    names = [f"bench-annotator-{i}" for i in range(args.annotators)]
    User.objects.filter(username__in=names).delete()
    for name in names:
        user = User.objects.create_user(username=name, password=PASSWORD)
        project.memberships.create(user=user, role="annotator")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    if args.conn_max_age is not None:
        env["DATABASE_CONN_MAX_AGE"] = str(args.conn_max_age)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}"]
        + ["-w", str(args.workers), "--threads", str(args.threads), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/accounts/login/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        run_annotators(args, base, names, project.pk)
    finally:
        server.terminate()
        server.wait(timeout=30)
    doubled = (
        Transcript.objects.filter(clip__project=project)
        .values("clip")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    open_left = Clip.objects.filter(project=project, status=Clip.Status.UNLABELED).count()
    print(f"double leases (clips with two transcripts): {doubled}; open clips left: {open_left}")
    kept = "the app's default" if args.conn_max_age is None else f"{args.conn_max_age} s"
    print(f"database: {connection.vendor}; connections kept: {kept}")
    project.delete()


def run_annotators(args, base: str, names: list[str], project_id: int) -> None:
    from django.db.models import Q

    from labeling.models import Clip

    low, _, high = args.pause.partition("-")
    pause = (float(low), float(high or low))
    latencies: dict[str, list[float]] = {"lease page": [], "submit": []}
    errors: list[str] = []
    false_empty = [0]
    budget = [args.max_requests]
    lock = threading.Lock()
    deadline = [float("inf")]  # set once everyone has logged in
    logged_in = threading.Barrier(len(names) + 1)
    annotate = f"/projects/{project_id}/annotate/"

    def timed(kind: str, call):
        with lock:
            if budget[0] <= 0:
                return None
            budget[0] -= 1
        started = time.perf_counter()
        try:
            body = call()
        except (urllib.error.URLError, OSError) as error:
            with lock:
                errors.append(f"{kind}: {error}")
            return None
        with lock:
            latencies[kind].append((time.perf_counter() - started) * 1000)
        if EMPTY in body and open_clips_remain():
            with lock:
                false_empty[0] += 1
        return body

    def open_clips_remain() -> bool:
        from django.utils import timezone

        now = timezone.now()
        free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
        unlabeled = Clip.objects.filter(project_id=project_id, status=Clip.Status.UNLABELED)
        return unlabeled.filter(free).exists()

    def person(name: str, rng: random.Random) -> None:
        annotator = Annotator(base, name)
        try:
            annotator.log_in()  # not measured: a password hash costs a core 0.3 s or so
        finally:
            logged_in.wait()
        time.sleep(rng.uniform(0, pause[1]))  # people do not all start in the same second
        body = timed("lease page", lambda: annotator.request(annotate))
        while body is not None and time.monotonic() < deadline[0]:
            match = WORKSPACE.search(body)
            if not match or not match.group(1):
                break  # an empty queue (counted above when it was false): this person stops
            clip_id, lease = match.groups()
            time.sleep(rng.uniform(*pause))  # listening and typing
            if time.monotonic() >= deadline[0]:
                break
            url = f"/projects/{project_id}/annotate/{clip_id}/submit/"
            data = {"lease_token": lease, "text": "habari yako"}
            body = timed("submit", lambda u=url, d=data: annotator.request(u, d, htmx=True))

    def person_thread(name: str, seed: int) -> None:
        from django.db import connection

        try:
            person(name, random.Random(seed))
        finally:
            connection.close()

    threads = [threading.Thread(target=person_thread, args=(n, i)) for i, n in enumerate(names)]
    for thread in threads:
        thread.start()
    logged_in.wait()
    started = time.monotonic()
    deadline[0] = started + args.seconds
    for thread in threads:
        thread.join(timeout=args.seconds + 120)
    elapsed = time.monotonic() - started
    total = sum(len(v) for v in latencies.values())
    print(
        f"{len(names)} annotators, pause {args.pause} s, {elapsed:.0f} s, gunicorn "
        f"{args.workers} workers x {args.threads} threads"
    )
    print(
        f"requests {total}, {total / elapsed:.1f}/s; errors {len(errors)}; false empty queues "
        f"{false_empty[0]}"
    )
    everything = [value for values in latencies.values() for value in values]
    for kind, values in [*latencies.items(), ("all", everything)]:
        if values:
            values.sort()
            p95 = values[int(0.95 * (len(values) - 1))]
            print(
                f"  {kind:<10} n={len(values):>5}  median {statistics.median(values):6.1f} ms"
                f"  p95 {p95:6.1f} ms  max {values[-1]:6.1f} ms"
            )
    for error in errors[:5]:
        print("  error:", error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a scratch database (default: fresh SQLite)")
    commands = parser.add_subparsers(dest="command", required=True)
    lease = commands.add_parser("lease", help="lease time against open clips")
    lease.add_argument("--clips", default="1000,10000,100000")
    lease.add_argument("--repeats", type=int, default=30)
    queries = commands.add_parser("queries", help="queries per lease page and per submit")
    queries.add_argument("--clips", type=int, default=1000)
    load = commands.add_parser("load", help="annotators through gunicorn")
    load.add_argument("--annotators", type=int, default=50)
    load.add_argument("--pause", default="10-20", help="seconds per clip, e.g. 10-20 or 0")
    load.add_argument("--seconds", type=float, default=90)
    load.add_argument("--max-requests", type=int, default=20_000)
    load.add_argument("--clips", type=int, default=5000)
    load.add_argument("--workers", type=int, default=3)
    load.add_argument("--threads", type=int, default=4)
    load.add_argument("--conn-max-age", type=int, help="seconds (default: the app's)")
    args = parser.parse_args()
    setup_django(args.database_url)
    if args.command == "lease":
        bench_lease([int(n) for n in args.clips.split(",")], args.repeats)
    elif args.command == "queries":
        bench_queries(args.clips)
    else:
        bench_load(args)


if __name__ == "__main__":
    main()
