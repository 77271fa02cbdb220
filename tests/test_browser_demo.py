"""The demo as a newcomer meets it, in a real Chromium: `demo_setup` with a real worker, the
Overview's next step, the answer key on the transcription page, the first round's chart
without typing a word."""

import json

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from labeling.models import Project, Transcript
from tests.conftest import ARTIFACTS, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def test_the_demo_opens_with_a_first_round_and_an_answer_key_to_transcribe_by(
    page, live_server, celery_worker, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    call_command("demo_setup", corpus_clips=30)
    project = Project.objects.get()
    training_round = project.rounds.get()
    wait_until(
        lambda: training_round.refresh_from_db() or training_round.status == "succeeded",
        timeout=300,
        what=f"the demo's first round to finish ({training_round.status})",
    )

    from training.models import ScoringRun

    wait_until(
        lambda: ScoringRun.objects.filter(project=project, status="succeeded").exists(),
        timeout=120,
        what="the first round's model to draft the pool",
    )

    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill((tmp_path / "demo-password").read_text().strip())
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Demo: Swahili").click()
    step = page.locator("#next-step")
    expect(step).to_have_attribute("data-state", "done")
    expect(step).to_contain_text("Round 1: test WER")

    step.get_by_role("link", name="See the chart and its errors").click()
    expect(page.locator("canvas#curve")).to_be_visible()
    points = json.loads(page.locator("#curve-points").inner_text())
    assert [point["round"] for point in points] == [1]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-1-dashboard.png"), full_page=True)

    page.get_by_role("link", name="Transcribe", exact=True).click()
    key = page.locator("#answer-key-text")
    expect(key).not_to_be_empty()
    expect(page.locator("#answer-key")).to_contain_text("demo answer key")
    # the draft says where it came from; the clips around it say what they say
    expect(page.locator("#draft-source")).to_contain_text("by round 1's model")
    expect(page.locator("#neighbours p").first).to_be_visible()
    clip_id = int(page.locator("#workspace").get_attribute("data-clip"))
    page.keyboard.press("Alt+k")
    expect(page.locator("#id_text")).to_have_value(key.inner_text().strip())
    page.screenshot(path=str(ARTIFACTS / "demo-2-answer-key.png"), full_page=True)
    page.keyboard.press("Control+Enter")
    expect(page.locator(".saved-note")).to_contain_text("Saved.")
    submitted = Transcript.objects.get(clip_id=clip_id, author__username="demo")
    assert submitted.text == submitted.clip.answer_key
