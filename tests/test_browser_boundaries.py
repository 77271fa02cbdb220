"""Clip boundaries in a real Chromium: keys and a drag move them, a split and a merge, and the
text in the box survives every re-cut."""

import pytest
from playwright.sync_api import expect

from labeling.models import Clip, ClipEdit
from tests.conftest import ARTIFACTS, wait_until
from tests.test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECOND = 16_000


def current(page) -> Clip:
    return Clip.objects.get(pk=int(page.locator("#workspace").get_attribute("data-clip")))


def test_keys_and_a_drag_move_the_boundaries_and_split_and_merge_keep_the_text(
    page, live_server, project, afternoon
):
    log_in(page, live_server, afternoon.username, "s3cret-pass-word")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    expect(page.locator('#waveform[data-drawn="true"]')).to_have_count(1)
    clip = current(page)
    assert clip.start_sample == 2 * SECOND
    page.keyboard.type("nusu ya")

    for _ in range(3):  # the end 0.3 s earlier; the clip is cut again once the keys rest
        page.keyboard.press("Alt+o")
    expect(page.locator(".saved-note")).to_contain_text("Boundaries moved")
    moved = current(page)
    assert (moved.start_sample, moved.end_sample) == (
        clip.start_sample,
        clip.end_sample - 3 * SECOND // 10,
    )
    expect(page.locator("#id_text")).to_have_value("nusu ya")
    expect(page.locator("#id_text")).to_be_focused()
    duration = "document.getElementById('audio').duration"  # polled from here: the CSP forbids eval
    wait_until(
        lambda: abs(page.evaluate(duration) - 1.7) < 0.01, timeout=10, what="the re-cut clip"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "boundaries-1-moved.png"), full_page=True)

    # Drag the start edge 0.2 s to the right: the canvas shows the clip and 2 s around it.
    expect(page.locator('#waveform[data-drawn="true"]')).to_have_count(1)
    canvas = page.locator("#waveform").bounding_box()
    player = page.locator("#player")
    view_start = float(player.get_attribute("data-context-start"))
    view_end = float(player.get_attribute("data-context-end"))
    px_per_second = canvas["width"] / (view_end - view_start)
    edge = canvas["x"] + (moved.start_sample / SECOND - view_start) * px_per_second
    y = canvas["y"] + canvas["height"] / 2
    page.mouse.move(edge, y)
    page.mouse.down()
    page.mouse.move(edge + 0.1 * px_per_second, y, steps=3)
    page.mouse.move(edge + 0.2 * px_per_second, y, steps=3)
    page.mouse.up()
    expect(page.locator("#workspace")).not_to_have_attribute("data-clip", str(moved.pk))
    dragged = current(page)
    assert dragged.end_sample == moved.end_sample
    assert abs(dragged.start_sample - (moved.start_sample + 0.2 * SECOND)) < 0.03 * SECOND

    # Split at the play position: the first part stays here, the second goes to the queue.
    expect(page.locator('#waveform[data-drawn="true"]')).to_have_count(1)  # set up anew
    page.evaluate(
        "document.getElementById('audio').pause(); document.getElementById('audio').currentTime = 0.6"
    )
    page.keyboard.press("Alt+x")
    expect(page.locator(".saved-note")).to_contain_text("Split")
    first = current(page)
    assert first.start_sample == dragged.start_sample
    assert abs(first.end_sample - (dragged.start_sample + 0.6 * SECOND)) < 0.05 * SECOND
    expect(page.locator("#id_text")).to_have_value("nusu ya")

    # Merge with the next clip: the second part of the split.
    page.keyboard.press("Alt+m")
    expect(page.locator(".saved-note")).to_contain_text("Merged")
    merged = current(page)
    assert (merged.start_sample, merged.end_sample) == (dragged.start_sample, dragged.end_sample)
    assert list(ClipEdit.objects.order_by("pk").values_list("kind", flat=True)) == [
        "reshape", "reshape", "split", "merge"
    ]  # fmt: skip

    # Past the next clip: refused, named, and the text is still there.
    for _ in range(5):
        page.keyboard.press("Alt+p")
    expect(page.locator("#text-errors")).to_contain_text("overlap")
    expect(page.locator("#id_text")).to_have_value("nusu ya")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".saved-note")).to_contain_text("Saved.")
    merged.refresh_from_db()
    assert merged.transcripts.get().text == "nusu ya"
