"""The transcription page's keys in a real Chromium: changed in the help dialog and used at
once; AltGr (Ctrl+Alt) left to typing; zoom and the spectrogram from the keyboard."""

import pytest
from playwright.sync_api import expect

from labeling.models import Clip
from tests.test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_keys_change_in_the_dialog_and_altgr_and_zoom_and_spectrogram_work(
    page,
    live_server,
    project,
    afternoon,
):
    log_in(page, live_server, afternoon.username, "s3cret-pass-word")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    canvas = page.locator("#waveform")
    expect(canvas).to_have_attribute("data-drawn", "true")

    # zoom in twice from the keyboard, out again; the spectrogram on and off
    full = float(canvas.get_attribute("data-span"))
    page.keyboard.press("Alt+Equal")
    expect(canvas).to_have_attribute("data-span", f"{full / 2:.2f}")
    page.keyboard.press("Alt+Equal")
    expect(canvas).to_have_attribute("data-span", f"{full / 4:.2f}")
    page.keyboard.press("Alt+Minus")
    expect(canvas).to_have_attribute("data-span", f"{full / 2:.2f}")
    page.keyboard.press("Alt+g")
    expect(canvas).to_have_attribute("data-view", "spectrogram")
    page.screenshot(path="test-artifacts/keys-spectrogram.png", full_page=True)
    page.keyboard.press("Alt+g")
    expect(canvas).to_have_attribute("data-view", "waveform")

    # AltGr+S (Ctrl+Alt on Windows layouts) types ś in Polish: it must not skip
    clip = page.locator("#workspace").get_attribute("data-clip")
    page.keyboard.press("Control+Alt+s")
    page.wait_for_timeout(300)
    expect(page.locator("#workspace")).to_have_attribute("data-clip", clip)

    # the dialog: skip on Alt+J instead of Alt+S
    page.keyboard.press("Alt+h")
    dialog = page.locator("#keys-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("skip this clip (never again for you)").select_option("KeyJ")
    dialog.get_by_role("button", name="Save my keys").click()
    expect(page.locator(".messages, .message, [role=status]").first).to_contain_text(
        "keys are saved"
    )
    expect(page.locator("aside.hotkeys")).to_contain_text("J")
    clip = page.locator("#workspace").get_attribute("data-clip")
    page.keyboard.press("Alt+s")  # no longer skip
    page.wait_for_timeout(300)
    expect(page.locator("#workspace")).to_have_attribute("data-clip", clip)
    page.keyboard.press("Alt+j")
    expect(page.locator("#workspace")).not_to_have_attribute("data-clip", clip)
    assert Clip.objects.get(pk=clip).skipped_by.filter(pk=afternoon.pk).exists()
