"""A labeling afternoon in a real Chromium: upload, ingest by a real worker, transcribe with
the keyboard only, flag, review. Screenshots land in test-artifacts/."""

import subprocess

import pytest
from playwright.sync_api import expect

from asr.audio import ffmpeg_executable
from labeling import services
from labeling.models import Clip, Transcript
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.celery, pytest.mark.django_db(transaction=True)]

PASSWORD = "s3cret-demo-pass"


@pytest.fixture
def english(django_user_model):
    manager = django_user_model.objects.create_user(username="lead", password=PASSWORD)
    project = services.project_create(
        name="English test",
        language_code="en",
        alphabet="abcdefghijklmnopqrstuvwxyz'",
        created_by=manager,
    )
    return project


def log_in(page, live_server) -> None:
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill("lead")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"annotation-{name}.png"), full_page=True)


def test_upload_ingest_transcribe_flag_review(
    page, live_server, english, celery_worker, speech_recording, tmp_path
):
    mp3 = tmp_path / "village-meeting.mp3"
    subprocess.run(
        [ffmpeg_executable(), "-v", "error", "-i", str(speech_recording), str(mp3)], check=True
    )
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio at all, just a text file with a .wav name\n" * 20)

    log_in(page, live_server)
    page.get_by_role("link", name="English test").click()
    page.get_by_role("link", name="Recordings", exact=True).click()
    page.wait_for_url("**/recordings/")  # and its script has run, before files are chosen

    page.locator("#id_files").set_input_files([str(mp3), str(notes)])
    expect(page.locator(".upload-bad")).to_contain_text(
        "notes.wav: not readable as audio", timeout=30_000
    )
    expect(page.locator(".upload-ok")).to_contain_text(
        "village-meeting.mp3: uploaded", timeout=30_000
    )
    # The table polls until the worker has cut the recording into clips.
    expect(page.locator('tr[data-status="ready"]')).to_have_count(1, timeout=90_000)
    shot(page, "1-recordings")

    page.get_by_role("link", name="Transcribe").click()
    text = page.locator("#id_text")
    expect(text).to_be_focused()
    first_clip = page.locator("#workspace").get_attribute("data-clip")
    page.keyboard.type("he was not an ill disposed young man")
    expect(page.locator('#waveform[data-drawn="true"]')).to_have_count(1)
    shot(page, "2-transcribe")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".saved-note")).to_contain_text("Saved.")
    expect(page.locator("#workspace")).not_to_have_attribute("data-clip", first_clip)

    # A character outside the alphabet is named at once and holds the submission back.
    second_clip = page.locator("#workspace").get_attribute("data-clip")
    page.keyboard.type("it costs 5 pounds")
    expect(page.locator("#text-errors")).to_contain_text("Not in this project's alphabet: 5")
    page.keyboard.press("Control+Enter")
    page.wait_for_timeout(500)
    expect(page.locator("#workspace")).to_have_attribute("data-clip", second_clip)
    assert Transcript.objects.count() == 1
    page.keyboard.press("Control+a")
    page.keyboard.type("it costs five pounds")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#workspace")).not_to_have_attribute("data-clip", second_clip)
    expect(page.locator(".saved-note")).to_contain_text("Saved.")

    page.keyboard.press("Alt+1")  # flag: noise or music
    expect(page.locator(".saved-note")).to_contain_text("Flagged as “noise or music”")
    shot(page, "3-after-flag")

    assert Transcript.objects.filter(flag="").count() == 2
    assert Transcript.objects.get(flag="noise").clip.status == "flagged"

    page.get_by_role("link", name="Review").click()
    # a reviewer's own transcripts are left out until asked for: here one person does both
    expect(page.locator(".review-item")).to_have_count(0)
    page.get_by_role("link", name="list them too").click()
    expect(page.locator(".review-item")).to_have_count(3)
    item = page.locator(".review-item").filter(has_text="ill disposed")
    item.locator("textarea").fill("he was not an ill-disposed young man".replace("-", " "))
    item.get_by_role("button", name="Accept (with your edits)").click()
    expect(page.locator(".message")).to_contain_text("Accepted.")
    expect(page.locator(".review-item")).to_have_count(2)
    shot(page, "4-review")
    accepted = Transcript.objects.get(status="accepted")
    assert accepted.text == "he was not an ill disposed young man"
    assert Clip.objects.get(pk=accepted.clip_id).status == "accepted"


def test_text_in_progress_survives_a_reload(page, live_server, english, make_clips):
    make_clips(english, count=2)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/projects/{english.pk}/annotate/")
    page.keyboard.type("half way through a long")
    clip = page.locator("#workspace").get_attribute("data-clip")
    page.reload()
    expect(page.locator("#workspace")).to_have_attribute("data-clip", clip)
    expect(page.locator("#id_text")).to_have_value("half way through a long")
    expect(page.locator("#restored-note")).to_be_visible()


def test_a_sent_text_is_forgotten_locally_once_the_server_says_it_is_stored(
    page, live_server, english, make_clips
):
    make_clips(english, count=2)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/projects/{english.pk}/annotate/")
    lease = page.locator("#workspace").get_attribute("data-lease")
    page.keyboard.type("kept here until it is stored")
    stored = f"() => localStorage.getItem('vernacular:text:{lease}')"
    assert page.evaluate(stored) == "kept here until it is stored"

    with page.expect_response(lambda r: "/submit" in r.url) as answer:
        page.keyboard.press("Control+Enter")

    assert "transcript-saved" in answer.value.headers.get("hx-trigger", "")
    expect(page.locator(".saved-note")).to_contain_text("Saved.")
    assert page.evaluate(stored) is None
    assert Transcript.objects.get().text == "kept here until it is stored"
