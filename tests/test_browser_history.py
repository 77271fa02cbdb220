"""Going back through your own earlier transcripts in a real Chromium, and editing one."""

import pytest
from playwright.sync_api import expect

from labeling.models import Transcript
from tests.test_browser import log_in
from tests.test_browser_boundaries import afternoon  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_alt_b_steps_back_through_my_transcripts_and_an_edit_is_a_new_version(
    page,
    live_server,
    project,
    afternoon,  # noqa: F811
):
    log_in(page, live_server, afternoon.username, "s3cret-pass-word")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    text = page.locator("#id_text")
    for word in ("moja", "mbili", "tatu"):
        clip = page.locator("#workspace").get_attribute("data-clip")
        expect(text).to_be_focused()
        page.keyboard.press("Control+a")
        page.keyboard.type(word)
        page.keyboard.press("Control+Enter")
        expect(page.locator("#workspace")).not_to_have_attribute("data-clip", clip)
        expect(page.locator(".saved-note")).to_contain_text("Saved.")
    assert list(Transcript.objects.order_by("pk").values_list("text", flat=True)) == [
        "moja", "mbili", "tatu"
    ]  # fmt: skip

    page.keyboard.press("Alt+b")
    expect(page.locator(".history-nav")).to_contain_text("your transcript of")
    expect(text).to_have_value("tatu")
    page.keyboard.press("Alt+b")
    expect(text).to_have_value("mbili")
    expect(text).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("mbili sana")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".saved-note")).to_contain_text("Saved as a new version")
    edited = Transcript.objects.get(text="mbili sana")
    assert edited.status == "submitted" and edited.edit_of.text == "mbili"
    assert edited.edit_of.status == "superseded"  # kept, with its history

    page.keyboard.press("Alt+b")  # an edit keeps its clip's place in the order
    expect(text).to_have_value("moja")
    page.keyboard.press("Alt+n")
    expect(text).to_have_value("mbili sana")
    page.keyboard.press("Alt+n")
    expect(text).to_have_value("tatu")
    page.keyboard.press("Alt+n")  # and then new clips again
    expect(page.locator(".history-nav")).to_have_count(0)
    expect(page.locator("#skip-form")).to_be_visible()
