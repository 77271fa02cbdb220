"""The cast (owner, reviewer, annotator, outsider), and the real services the suite starts:
a Redis server, a Celery worker and a headless Chromium. Nothing here is mocked."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from django.test import Client

from labeling import services
from labeling.models import Role

ROOT = Path(__file__).resolve().parent.parent
# Until a test asks for the `redis_url` fixture, nothing talks to a developer's own Redis:
# the app points at a port where nothing listens (and says so, as it would in production).
NO_REDIS = "redis://127.0.0.1:1/0"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"Gave up waiting {timeout:.0f} s for {what}.")


# --- people and projects -------------------------------------------------------------------


def point_app_at_redis(url: str) -> None:
    """Settings and the Celery app of this process use `url` from now on."""
    from django.conf import settings

    from config.celery import app

    settings.REDIS_URL = url
    app.conf.broker_url = url
    app.conf.result_backend = url
    # Connections made for the old URL are cached, in kombu's pools too (keyed by URL, so a
    # closed one would come back when a test points at an earlier URL again): drop them all,
    # as Celery does after a fork.
    from kombu import pools

    pools.reset()
    app._after_fork()
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)


def pytest_configure(config):
    point_app_at_redis(NO_REDIS)
    # One media folder for this run, shared with the worker processes the suite starts.
    from django.conf import settings

    media = Path(tempfile.mkdtemp(prefix="vernacular-test-media-"))
    os.environ["MEDIA_ROOT"] = str(media)
    settings.MEDIA_ROOT = media
    models = Path(tempfile.mkdtemp(prefix="vernacular-test-models-"))
    os.environ["VERNACULAR_MODEL_DIR"] = str(models)
    settings.VERNACULAR_MODEL_DIR = models


REAL_SPEECH = ROOT / "tests" / "fixtures" / "real-speech"


def real_speech_dir() -> Path:
    """Debian's pocketsphinx-testdata recordings (BSD-2, LICENSE-pocketsphinx-testdata), kept
    in the repository: a bare clone runs the suite with nothing beside it."""
    return REAL_SPEECH


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """asr.audio.write_wav, returning the path."""
    from asr.audio import write_wav as write

    write(path, samples)
    return path


@pytest.fixture(scope="session")
def speech_recording(tmp_path_factory) -> Path:
    """About 50 s of real English speech: the ten fixture utterances, 0.8 s of quiet between."""
    directory = real_speech_dir()
    from asr.audio import decode_audio

    rng = np.random.default_rng(0)
    pieces = []
    for wav in sorted(directory.glob("*.wav")):
        pieces.append(decode_audio(wav))
        pieces.append(rng.normal(0, 0.001, 12_800).astype(np.float32))
    return write_wav(
        tmp_path_factory.mktemp("speech") / "long-recording.wav", np.concatenate(pieces)
    )


def head_trained(model, clips, texts, steps: int, learning_rate: float) -> list[float]:
    """Train a Whisper CTC model's head on these clips, all of them each step, with training's
    own loss (asr.finetune.ctc_loss), the frozen encoder run once: the fixtures' quick way to
    a model that knows the clips. Returns the losses."""
    import torch

    from asr.finetune import ctc_loss, get_batch

    network = model.network
    labels = [model.vocabulary.encode(text) for text in texts]
    batch = get_batch(model, clips, labels, range(len(clips)), torch.device("cpu"))
    with torch.no_grad():  # the one batch's encoder outputs, in float32 (a round's cache
        encoded = network.encode(batch.input_values, batch.attention_mask)  # keeps float16)
    network.encode = lambda *_: encoded
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate)
    network.train()
    torch.manual_seed(0)
    losses = []
    for _ in range(steps):
        loss = ctc_loss(network, batch, model.vocabulary.pad_id)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    network.eval()
    del network.encode  # the network encodes again
    return losses


def clip_seconds_kept(recording) -> bool:
    """The seconds of clips its row keeps (Recording.clip_seconds) are its clips' seconds."""
    from labeling.models import Recording

    recording = Recording.objects.get(pk=recording.pk)
    cut = sum(clip.duration_seconds for clip in recording.clips.all())
    return abs(recording.clip_seconds - cut) < 1e-6 and cut > 0


@pytest.fixture
def make_clips(tmp_path):
    """Clips made directly (no ingest), each a short tone: for queue and page tests."""
    from django.core.files.base import ContentFile

    from labeling.models import Clip, Recording

    def make(project, count: int = 3, seconds: float = 2.0) -> list:
        recording = Recording.objects.create(
            project=project,
            original_name="field-recording.wav",
            sha256=f"{project.pk}-{Recording.objects.count()}",
            size_bytes=1,
            duration_seconds=count * seconds,
            clip_seconds=count * seconds,
        )
        length = int(seconds * 16_000)
        clips, tones = [], []
        for index in range(count):
            pitch = (
                220 + 20 * index + 200 * Recording.objects.count()
            )  # every clip sounds different
            tone = 0.3 * np.sin(np.arange(length) * 2 * np.pi * pitch / 16_000).astype(np.float32)
            tones.append(tone)
            clip = Clip(
                project=project,
                recording=recording,
                start_sample=index * length,
                end_sample=(index + 1) * length,
            )
            path = write_wav(tmp_path / f"clip-{recording.pk}-{index}.wav", tone)
            clip.audio.save(
                f"clips/test/{recording.pk}-{index}.wav", ContentFile(path.read_bytes()), save=False
            )
            clip.save()
            clips.append(clip)
        # The recording is its clips end to end: boundary edits cut it again.
        path = write_wav(tmp_path / f"recording-{recording.pk}.wav", np.concatenate(tones))
        recording.audio.save(f"recordings/test/{recording.pk}.wav", ContentFile(path.read_bytes()))
        return clips

    return make


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, password: str = "correct horse battery staple"):
        return django_user_model.objects.create_user(username=username, password=password)

    return make


@pytest.fixture
def owner(make_user):
    return make_user("olga")


@pytest.fixture
def reviewer(make_user):
    return make_user("ravi")


@pytest.fixture
def annotator(make_user):
    return make_user("amina")


@pytest.fixture
def outsider(make_user):
    return make_user("oscar")


@pytest.fixture
def project(owner, reviewer, annotator):
    project = services.project_create(
        name="Kiswahili", language_code="sw", alphabet="abcdefghijklmnoprstuvwyz'", created_by=owner
    )
    services.membership_create(project=project, user=reviewer, role=Role.REVIEWER)
    services.membership_create(project=project, user=annotator, role=Role.ANNOTATOR)
    return project


@pytest.fixture
def other_project(outsider):
    return services.project_create(
        name="Gàidhlig", language_code="gd", alphabet="abcdefghilmnoprstuàèìòù", created_by=outsider
    )


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


# --- Redis and Celery ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server on a free port; the app's Celery and settings point at it."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(
            "redis-server is not installed; `make test` installs it (scripts/system_deps.sh)."
        )
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    def answers() -> bool:
        try:
            return redis.Redis.from_url(url).ping()
        except redis.ConnectionError:
            return False

    wait_until(answers, timeout=10, what="redis-server to start")

    point_app_at_redis(url)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_down():
    """The app points at a port where no Redis listens, whatever ran before; then back."""
    from django.conf import settings

    before = settings.REDIS_URL
    point_app_at_redis(NO_REDIS)
    yield NO_REDIS
    point_app_at_redis(before)


class Worker:
    """A real `celery worker` process, as `make run` starts it."""

    def __init__(
        self,
        *,
        redis_url: str,
        database_url: str,
        queues: str,
        name: str,
        log: Path,
        beat: bool = False,
        env: dict | None = None,
    ):
        env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url, **(env or {})}
        env.setdefault("VERNACULAR_HEARTBEAT_SECONDS", "1")
        self.name = name
        self.log = log
        argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo"]
        argv += ["-Q", queues, "-n", name, "-l", "info", "--without-gossip", "--without-mingle"]
        if beat:  # the beat scheduler inside the worker, as `make run` starts its default one
            argv += ["-B", "--schedule", str(log.with_suffix(".beat"))]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 180) -> None:  # importing torch is slow on a busy box
        from config.celery import app

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Worker exited early:\n{self.log.read_text()[-3000:]}")
            return bool(app.control.ping(destination=[self.name], timeout=0.5))

        wait_until(ready, timeout=timeout, what=f"celery worker {self.name}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _test_database_url() -> str:
    from django.db import connection

    params = connection.settings_dict
    if params["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{params['NAME']}"
    user = params["USER"]
    password = f":{params['PASSWORD']}" if params["PASSWORD"] else ""
    host = params["HOST"] or "localhost"
    port = f":{params['PORT']}" if params["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{params['NAME']}"


@pytest.fixture(scope="session")
def start_worker(redis_url, django_db_setup, django_db_blocker, tmp_path_factory):
    """Starts workers on the test database; all are stopped at the end of the session."""
    workers: list[Worker] = []
    logs = tmp_path_factory.mktemp("worker-logs")

    def start(
        queues: str = "default,gpu",
        name: str | None = None,
        wait: bool = True,
        beat: bool = False,
        env: dict | None = None,
    ) -> Worker:
        # wait=False for a worker that will find a task at once: the solo pool answers no
        # ping while it runs one, so readiness is then seen in the task's own progress.
        name = name or f"test{len(workers)}@localhost"
        with django_db_blocker.unblock():
            database_url = _test_database_url()
        worker = Worker(
            redis_url=redis_url,
            database_url=database_url,
            queues=queues,
            name=name,
            log=logs / f"{name}.log",
            beat=beat,
            env=env,
        )
        workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


_shared_worker: dict[str, Worker] = {}


@pytest.fixture
def celery_worker(start_worker):
    """One worker on both queues, shared by the tests that need one (restarted if stopped)."""
    worker = _shared_worker.get("worker")
    if worker is None or worker.proc.poll() is not None:
        worker = _shared_worker["worker"] = start_worker()
    return worker


@pytest.fixture
def only_my_workers(start_worker):
    """Stops the shared worker; the test starts its own (this fixture is the starter), which
    are stopped when it ends, so no other worker takes its tasks or outlives it."""
    worker = _shared_worker.pop("worker", None)
    if worker is not None:
        worker.stop()
    started: list[Worker] = []

    def start(**kwargs) -> Worker:
        started.append(start_worker(**kwargs))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


# --- browser -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}; `make test` installs Debian's chromium.")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between page actions are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    # Every browser test is also a Content-Security-Policy check: Chromium reports each thing
    # the policy blocked (an inline script or style, a foreign origin) on the console.
    blocked = []
    page.on(
        "console",
        lambda message: (
            blocked.append(f"{page.url}: {message.text[:90]} at {message.location}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not blocked, f"the page broke its Content-Security-Policy: {blocked}"


def pytest_report_header(config):
    from django.db import connection

    return f"database: {connection.vendor} ({connection.settings_dict['NAME']})"


@pytest.fixture(autouse=True)
def small_default_base(settings):
    # Rounds in tests start from the tiny random model unless a test picks a base: the
    # Whisper-base default has its own test (tests/test_rounds.py), and is slower.
    settings.VERNACULAR_DEFAULT_BASE_MODEL = "builtin:tiny"


@pytest.fixture
def labeled_speech(owner, make_clips):
    """Fills an English-alphabet project with the ten real labeled fixture clips (6 train,
    2 dev, 2 test) and three open clips."""
    from django.core.management import call_command

    from labeling.models import Clip

    def fill(project):
        manifest = str(real_speech_dir() / "manifest.jsonl")
        call_command("import_manifest", manifest, project=project.pk, user=owner.username)
        imported = list(Clip.objects.filter(project=project).order_by("pk"))
        Clip.objects.filter(pk__in=[c.pk for c in imported[:2]]).update(split="test")
        Clip.objects.filter(pk__in=[c.pk for c in imported[2:4]]).update(split="dev")
        make_clips(project, count=3)
        return project

    return fill


@pytest.fixture(scope="session")
def trained_whisper_model(tmp_path_factory):
    """The default model (Whisper-base encoder + CTC head), its head trained on the ten
    real-speech clips until its greedy drafts are more right than wrong, saved with a lexicon and LM of
    their transcripts: (CtcModel, its directory, [(wav path, text)]). Skips without the
    Whisper-base weight packages."""
    import json

    import torch

    from asr.audio import decode_audio
    from asr.checkpoint import save_ctc_model
    from asr.lm import save_language_model
    from asr.text import TextRules, normalize_text, vocabulary_from_texts
    from asr.whisper import (
        WhisperCtcHeadConfig,
        WhisperWeightsMissing,
        whisper_ctc_model,
    )

    rows = [
        json.loads(line)
        for line in (REAL_SPEECH / "manifest.jsonl").read_text().split("\n")
        if line
    ]
    rules = TextRules(strip_characters=",.?!;:\"'")
    pairs = [
        (REAL_SPEECH / row["audio_filepath"], normalize_text(row["text"], rules)) for row in rows
    ]
    vocabulary = vocabulary_from_texts([text for _, text in pairs], rules)
    try:
        model = whisper_ctc_model(vocabulary, WhisperCtcHeadConfig(dropout=0.0))
    except WhisperWeightsMissing as error:
        pytest.skip(f"Whisper-base weights not installed ({error})")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # about a minute on one core; its greedy CER on these clips is then about 6%
    head_trained(model, [decode_audio(path) for path, _ in pairs], [t for _, t in pairs], 100, 2e-3)
    torch.set_num_threads(threads)
    directory = tmp_path_factory.mktemp("trained-whisper")
    save_ctc_model(model, directory)
    save_language_model(directory, [text for _, text in pairs])
    return model, directory, pairs


@pytest.fixture
def afternoon(project, make_clips, django_user_model):
    """The project's annotator with a password to log in with, and four 2 s clips of one
    recording, served second clip (2-4 s) first: a clip with neighbours on both sides."""
    from labeling.models import Clip

    user = project.memberships.get(role="annotator").user
    user.set_password("s3cret-pass-word")
    user.save()
    clips = make_clips(project, count=4, seconds=2.0)
    Clip.objects.exclude(pk=clips[1].pk).update(random_key=0.9)
    Clip.objects.filter(pk=clips[1].pk).update(random_key=0.1)
    return user
