"""The transcription page in a real Chromium, through gunicorn on loopback: from a submit (or a
boundary edit) leaving the page to the next clip's audio being playable. Prints figures;
asserts nothing.

    .venv/bin/python scripts/benchmark_page.py --submits 30 --edits 15

Each submit types a word and presses Ctrl+Enter; each edit presses Alt+O or Alt+P (the end
0.1 s earlier or later), which the page sends once the keys rest (CUT_AFTER, 600 ms, in
static/js/annotate.js): the figure starts when the request leaves, and the pause is printed
beside it. The clips are 3 s of synthetic audio in one recording, on a fresh SQLite file.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchmark_web import PASSWORD, free_port, setup_django  # noqa: E402

CLIP_SECONDS, GAP_SECONDS, SAMPLE_RATE = 3.0, 1.0, 16_000
# Installed in the page through the DevTools protocol (the page's CSP forbids eval): the
# time from a request leaving to the swapped-in clip's audio being playable.
TIMER = """() => {
  window.benchTimes = [];
  document.body.addEventListener("htmx:beforeRequest", () => { window.benchSent = performance.now(); });
  document.body.addEventListener("htmx:afterSettle", () => {
    const audio = document.getElementById("audio");
    if (!audio || window.benchSent === undefined) return;
    const done = () => window.benchTimes.push(performance.now() - window.benchSent);
    if (audio.readyState >= 3) done(); else audio.addEventListener("canplay", done, { once: true });
  });
}"""


def make_project(clips: int):
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile

    from asr.audio import wav_bytes
    from labeling import services
    from labeling.models import Clip, Recording

    user = get_user_model().objects.create_user(username="bench-annotator", password=PASSWORD)
    project = services.project_create(
        name="benchmark-page",
        language_code="sw",
        alphabet="abcdefghijklmnoprstuvwyz'",
        created_by=user,
        test_minutes_target=0,
        dev_minutes_target=0,
    )
    rng = np.random.default_rng(0)
    clip_samples, gap = int(CLIP_SECONDS * SAMPLE_RATE), int(GAP_SECONDS * SAMPLE_RATE)
    pieces = []
    for index in range(clips):
        t = np.arange(clip_samples) / SAMPLE_RATE
        pieces.append(
            0.2 * np.sin(2 * np.pi * (200 + 10 * index) * t) * rng.uniform(0.5, 1, t.size)
        )
        pieces.append(np.zeros(gap))
    whole = np.concatenate(pieces).astype(np.float32)
    recording = Recording(
        project=project,
        original_name="benchmark.wav",
        sha256="benchmark",
        size_bytes=2 * whole.size,
        duration_seconds=whole.size / SAMPLE_RATE,
        clip_seconds=clips * CLIP_SECONDS,
        status=Recording.Status.READY,
    )
    recording.audio.save("benchmark.wav", ContentFile(wav_bytes(whole)), save=True)
    for index in range(clips):
        start = index * (clip_samples + gap)
        clip = Clip(
            project=project,
            recording=recording,
            start_sample=start,
            end_sample=start + clip_samples,
        )
        clip.audio.save(
            f"clips/bench/{start}.wav", ContentFile(wav_bytes(whole[start : start + clip_samples]))
        )
    return project, user


def timed(page, action, count: int) -> list[float]:
    """Runs `action` until `count` more requests have swapped in a playable clip."""
    before = page.evaluate("() => window.benchTimes.length")
    action()
    deadline = time.monotonic() + 30
    while page.evaluate("() => window.benchTimes.length") < before + count:
        if time.monotonic() > deadline:
            raise SystemExit("the page did not answer within 30 s")
        time.sleep(0.02)
    return page.evaluate("() => window.benchTimes")[before : before + count]


def summary(name: str, millis: list[float]) -> str:
    return (
        f"{name:<40} n={len(millis):>3}  median {statistics.median(millis):6.0f} ms  "
        f"min {min(millis):5.0f}  max {max(millis):5.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=30)
    parser.add_argument("--edits", type=int, default=15)
    args = parser.parse_args()
    setup_django(None)
    project, user = make_project(args.submits + 5)

    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"]
        + ["--log-level", "warning"],
        cwd=ROOT,
        env=dict(os.environ),
    )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/accounts/login/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page()
            page.goto(base + "/accounts/login/")
            page.get_by_label("Username").fill(user.username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.goto(f"{base}/projects/{project.pk}/annotate/")
            page.wait_for_selector("#audio", state="attached")
            page.evaluate(TIMER)
            edits = []
            for index in range(args.edits):  # on the first clip: the end back and forth
                key = "Alt+o" if index % 2 == 0 else "Alt+p"
                edits += timed(page, lambda key=key: page.keyboard.press(key), 1)
            submits = []
            for _ in range(args.submits):

                def submit():
                    page.keyboard.type("neno")
                    page.keyboard.press("Control+Enter")

                submits += timed(page, submit, 1)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(summary("submit -> next clip playable", submits))
    print(summary("boundary edit sent -> re-cut clip playable", edits))
    print("(a boundary edit is sent 600 ms after the last key; that pause is not counted)")


if __name__ == "__main__":
    main()
