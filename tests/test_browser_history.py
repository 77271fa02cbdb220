"""Going back through your own earlier transcripts in a real Chromium (Alt+[ and Alt+]), and
editing one; unsent text on another machine; Later."""

import pytest
from playwright.sync_api import expect

from labeling.models import Clip, Transcript
from tests.conftest import wait_until
from tests.test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_alt_bracket_steps_back_through_my_transcripts_and_an_edit_is_a_new_version(
    page,
    live_server,
    project,
    afternoon,
):
    log_in(page, live_server, afternoon.username, "s3cret-pass-word")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    text = page.locator("#id_text")
    for word in ("moja", "mbili", "tatu"):
        clip = page.locator("#workspace").get_attribute("data-clip")
        expect(page.locator('#waveform[data-drawn="true"]')).to_have_count(1)
        expect(text).to_be_focused()
        page.keyboard.press("Control+a")
        page.keyboard.type(word)
        page.keyboard.press("Control+Enter")
        expect(page.locator("#workspace")).not_to_have_attribute("data-clip", clip)
        expect(page.locator(".saved-note")).to_contain_text("Saved.")
    assert list(Transcript.objects.order_by("pk").values_list("text", flat=True)) == [
        "moja", "mbili", "tatu"
    ]  # fmt: skip

    page.keyboard.press("Alt+BracketLeft")
    expect(page.locator(".history-nav")).to_contain_text("your transcript of")
    expect(text).to_have_value("tatu")
    page.keyboard.press("Alt+BracketLeft")
    expect(text).to_have_value("mbili")
    # the page is set up for it (setup() puts the caret at the end once the swap settles)
    expect(page.locator('#waveform[data-drawn="true"]')).to_have_count(1)
    expect(text).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("mbili sana")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".saved-note")).to_contain_text("Saved as a new version")
    edited = Transcript.objects.get(text="mbili sana")
    assert edited.status == "submitted" and edited.edit_of.text == "mbili"
    assert edited.edit_of.status == "superseded"  # kept, with its history

    page.keyboard.press("Alt+BracketLeft")  # an edit keeps its clip's place in the order
    expect(text).to_have_value("moja")
    page.keyboard.press("Alt+BracketRight")
    expect(text).to_have_value("mbili sana")
    page.keyboard.press("Alt+BracketRight")
    expect(text).to_have_value("tatu")
    page.keyboard.press("Alt+BracketRight")  # and then new clips again
    expect(page.locator(".history-nav")).to_have_count(0)
    expect(page.locator("#skip-form")).to_be_visible()


def test_unsent_text_follows_me_to_another_machine_and_later_puts_a_clip_off(
    page,
    browser,
    live_server,
    project,
    afternoon,
):
    log_in(page, live_server, afternoon.username, "s3cret-pass-word")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    clip = page.locator("#workspace").get_attribute("data-clip")
    page.keyboard.type("nusu ya sentensi")
    wait_until(
        lambda: Clip.objects.get(pk=clip).lease_text == "nusu ya sentensi",
        timeout=10,
        what="the unsent text on the server",
    )

    elsewhere = browser.new_context().new_page()  # another machine: no shared storage
    log_in(elsewhere, live_server, afternoon.username, "s3cret-pass-word")
    elsewhere.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    expect(elsewhere.locator("#workspace")).to_have_attribute("data-clip", clip)
    expect(elsewhere.locator("#id_text")).to_have_value("nusu ya sentensi")

    elsewhere.keyboard.press("Alt+l")
    expect(elsewhere.locator(".saved-note")).to_contain_text("Put off")
    expect(elsewhere.locator("#workspace")).not_to_have_attribute("data-clip", clip)
    put_off = Clip.objects.get(pk=clip)
    assert put_off.postponed_by == afternoon and put_off.lease_user is None
    assert put_off.lease_text == "nusu ya sentensi"
    elsewhere.context.close()


def test_a_second_listener_agrees_with_ctrl_enter(
    page,
    live_server,
    project,
    afternoon,
    reviewer,
):
    from labeling import queue

    project.second_listener = True
    project.save()
    clip = queue.clip_lease_next(project=project, user=afternoon)
    queue.transcript_submit(clip=clip, user=afternoon, lease_token=clip.lease_token, text="moja")
    reviewer.set_password("s3cret-pass-word")
    reviewer.save()

    log_in(page, live_server, reviewer.username, "s3cret-pass-word")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    expect(page.locator("#workspace")).to_have_attribute("data-clip", str(clip.pk))
    expect(page.locator("#check-note")).to_contain_text("Someone wrote this")
    expect(page.locator("#id_text")).to_have_value("moja")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".saved-note")).to_contain_text("Agreed with the first listener")
    clip.refresh_from_db()
    assert clip.status == "accepted"
