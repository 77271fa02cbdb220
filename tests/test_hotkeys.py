"""Keys a person can change: stored per user, refused when unknown or taken twice."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from labeling import hotkeys
from labeling.models import KeyBindings

pytestmark = pytest.mark.django_db


def test_the_defaults_take_no_key_twice_and_none_a_browser_or_macos_keeps():
    codes = list(hotkeys.DEFAULTS.values())
    assert len(codes) == len(set(codes))
    kept = {"KeyD", "KeyE", "KeyF", "KeyI", "KeyN", "KeyU", "Backquote"}
    assert not kept & set(codes)
    assert all(code in hotkeys.KEYS for code in codes)


def test_a_person_changes_a_key_and_only_their_own(annotator, reviewer):
    saved = hotkeys.bindings_save(user=annotator, codes={"skip": "KeyJ"})
    assert saved["skip"] == "KeyJ" and hotkeys.bindings_for(annotator)["skip"] == "KeyJ"
    assert hotkeys.bindings_for(reviewer)["skip"] == "KeyS"
    assert KeyBindings.objects.get(user=annotator).codes == {"skip": "KeyJ"}  # only the change
    hotkeys.bindings_save(user=annotator, codes=dict(hotkeys.DEFAULTS))
    assert KeyBindings.objects.get(user=annotator).codes == {}


def test_a_key_taken_twice_or_unknown_is_refused_and_nothing_changes(annotator):
    with pytest.raises(ValidationError, match="Alt\\+R is chosen twice"):
        hotkeys.bindings_save(user=annotator, codes={"skip": "KeyR"})
    with pytest.raises(ValidationError, match="from the list"):
        hotkeys.bindings_save(user=annotator, codes={"skip": "F5"})
    with pytest.raises(ValidationError, match="from the list"):
        hotkeys.bindings_save(user=annotator, codes={"launch": "KeyJ"})
    assert hotkeys.bindings_for(annotator) == hotkeys.DEFAULTS


def test_the_dialog_saves_the_keys_and_the_page_lists_them(
    client_for, annotator, project, make_clips
):
    make_clips(project, count=1)
    client = client_for(annotator)
    page = reverse("annotate", args=[project.pk])
    response = client.post(reverse("key_bindings"), {"key_skip": "KeyJ", "next": page})
    assert response.status_code == 302 and response["Location"] == page
    body = client.get(page).content.decode()
    assert "<kbd>Alt</kbd>+<kbd>J</kbd></dt><dd>skip this clip" in body
    assert '"skip": "KeyJ"' in body  # for the page's script
    clash = client.post(reverse("key_bindings"), {"key_skip": "KeyR", "next": page}, follow=True)
    assert "Alt+R is chosen twice" in clash.content.decode()
    elsewhere = client.post(
        reverse("key_bindings"), {"reset": "1", "next": "https://evil.example/"}
    )
    assert elsewhere["Location"] == reverse("project_list")
    assert hotkeys.bindings_for(annotator) == hotkeys.DEFAULTS
