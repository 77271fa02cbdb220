"""Review at scale and a queued round's wait, in a real Chromium."""

import uuid

import pytest
from playwright.sync_api import expect

from labeling.models import Clip, Transcript
from tests.test_browser import log_in
from training.models import TrainingRound

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_pages_filters_and_decides_and_keeps_the_filter(
    page, live_server, project, make_clips, annotator, reviewer, owner
):
    reviewer.set_password("s3cret-pass-word")
    reviewer.save()
    clips = make_clips(project, count=30, seconds=1.0)
    for index, clip in enumerate(clips):
        Transcript.objects.create(
            clip=clip,
            author=annotator,
            lease_token=uuid.uuid4(),
            text=f"sentensi {'abcdefghijklmnoprstuvwyz'[index % 24] * 3}",
        )
    Clip.objects.filter(pk__in=[c.pk for c in clips]).update(status="submitted")
    for clip in clips[:2]:  # two disagreements: someone else wrote other words
        Transcript.objects.create(
            clip=clip, author=owner, lease_token=uuid.uuid4(), text="tofauti", conflict=True
        )
        Transcript.objects.filter(clip=clip).update(conflict=True)

    log_in(page, live_server, reviewer.username, "s3cret-pass-word")
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    expect(page.locator(".review-item")).to_have_count(25)
    expect(page.locator("nav.pages")).to_contain_text("page 1 of 2")
    page.get_by_label("Show").select_option("disagreements")
    page.get_by_role("button", name="List").click()
    expect(page.locator(".review-item")).to_have_count(4)  # both versions of both clips
    page.locator(".review-item").first.get_by_role("button", name="Accept").click()
    expect(page.get_by_label("Show")).to_have_value("disagreements")  # the filter stays
    expect(page.locator(".review-item")).to_have_count(2)


def test_a_queued_round_says_why_it_waits(page, live_server, project, owner, redis_down):
    from django.core.cache import cache

    cache.clear()  # a reason found by an earlier test is kept for 15 s
    owner.set_password("s3cret-pass-word")
    owner.save()
    TrainingRound.objects.create(project=project, number=1, base="b", status="queued")
    log_in(page, live_server, owner.username, "s3cret-pass-word")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    expect(page.locator("#round-waiting")).to_contain_text("queue is free")
    # Redis does not answer here: said at once, not after a wait on it
    expect(page.locator("#gpu-wait")).to_contain_text("Redis is not reachable", timeout=5_000)


def test_the_round_page_follows_a_running_round_live(page, live_server, project, owner):
    owner.set_password("s3cret-pass-word")
    owner.save()
    live = TrainingRound.objects.create(
        project=project, number=1, base="b", status="running", step=40, total_steps=200
    )
    log_in(page, live_server, owner.username, "s3cret-pass-word")
    page.goto(f"{live_server.url}/projects/{project.pk}/rounds/1/")
    expect(page.locator("#round-progress progress")).to_have_attribute("value", "0.2")
    TrainingRound.objects.filter(pk=live.pk).update(step=150, eta_seconds=30)
    # no reload: the page asks every 2 s
    expect(page.locator("#round-progress progress")).to_have_attribute("value", "0.75")
    expect(page.locator("#round-progress")).to_contain_text("30 s")
