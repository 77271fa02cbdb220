"""The transcription, review and stats pages, through Django's test client."""

import uuid

import pytest
from django.urls import reverse

from labeling import queue
from labeling.models import Clip, Transcript

pytestmark = pytest.mark.django_db


def htmx(client, url, data):
    return client.post(url, data, headers={"HX-Request": "true"})


@pytest.fixture
def leased(project, make_clips, annotator):
    make_clips(project, count=3)
    return queue.clip_lease_next(project=project, user=annotator)


def submit_url(project, clip):
    return reverse("annotate_submit", args=[project.pk, clip.pk])


def test_the_page_shows_the_leased_clip_with_its_draft(client_for, annotator, project, leased):
    Clip.objects.filter(pk=leased.pk).update(draft_text="habari za asubuhi")
    body = client_for(annotator).get(reverse("annotate", args=[project.pk])).content.decode()
    assert f'data-lease="{leased.lease_token}"' in body
    assert "model's draft: correct it" in body
    assert ">habari za asubuhi</textarea>" in body
    assert reverse("clip_audio", args=[project.pk, leased.pk]) in body
    assert "Ctrl</kbd>+<kbd>Enter" in body


def test_the_page_says_where_the_draft_came_from_and_what_the_clips_around_it_say(
    client_for, annotator, reviewer, project, make_clips
):
    before, middle, after = make_clips(project, count=3)
    Clip.objects.filter(pk=middle.pk).update(
        random_key=0.0,
        draft_text="habari",
        draft_round=3,
        draft_with_lm=True,
        draft_confidence=0.8123,
    )
    Clip.objects.filter(pk=before.pk).update(random_key=0.9, draft_text="rasimu ya kwanza")
    Clip.objects.filter(pk=after.pk).update(random_key=0.9, draft_text="rasimu ya mwisho")
    Transcript.objects.create(clip=before, author=reviewer, lease_token=uuid.uuid4(), text="zamani")
    Clip.objects.filter(pk=before.pk).update(status="submitted")

    body = client_for(annotator).get(reverse("annotate", args=[project.pk])).content.decode()

    assert f'data-clip="{middle.pk}"' in body
    assert "by round 3's model, with its lexicon and LM; confidence 0.81" in body
    assert "Before:</span>" in body and "zamani" in body  # its transcript, not its draft
    assert "rasimu ya kwanza" not in body
    assert "After (model's draft):</span>" in body and "rasimu ya mwisho" in body


def test_a_submit_over_htmx_returns_the_next_clip(client_for, annotator, project, leased):
    client = client_for(annotator)
    data = {"lease_token": leased.lease_token, "text": "Habari yako"}
    response = htmx(client, submit_url(project, leased), data)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="workspace"')  # a fragment, not a whole page
    assert "Saved." in body and "Undo" in body
    nxt = Clip.objects.get(lease_user__isnull=False)
    assert nxt.pk != leased.pk and f'data-lease="{nxt.lease_token}"' in body
    assert Transcript.objects.get().text == "Habari yako"


def test_characters_outside_the_alphabet_are_named_and_nothing_is_stored(
    client_for, annotator, project, leased
):
    data = {"lease_token": leased.lease_token, "text": "jambo 3 señor"}
    response = client_for(annotator).post(submit_url(project, leased), data)
    body = response.content.decode()
    assert response.status_code == 400
    assert "Not in this project&#x27;s alphabet: 3 ñ" in body
    assert ">jambo 3 señor</textarea>" in body  # the text stays in the box
    assert not Transcript.objects.exists()


def test_an_empty_transcript_must_be_flagged_instead(client_for, annotator, project, leased):
    client = client_for(annotator)
    response = client.post(
        submit_url(project, leased), {"lease_token": leased.lease_token, "text": " "}
    )
    assert "or flag the clip" in response.content.decode()
    client.post(
        submit_url(project, leased),
        {"lease_token": leased.lease_token, "text": "", "flag": "unintelligible"},
    )
    assert Transcript.objects.get().flag == "unintelligible"


def test_a_double_submit_through_the_page_stores_one(client_for, annotator, project, leased):
    client = client_for(annotator)
    data = {"lease_token": leased.lease_token, "text": "mara mbili"}
    htmx(client, submit_url(project, leased), data)
    second = htmx(client, submit_url(project, leased), data).content.decode()
    assert "Already saved (sent twice)" in second
    assert Transcript.objects.count() == 1


def test_undo_through_the_page_reopens_the_clip_with_my_text(
    client_for, annotator, project, leased
):
    client = client_for(annotator)
    htmx(client, submit_url(project, leased), {"lease_token": leased.lease_token, "text": "kosa"})
    body = htmx(client, reverse("annotate_undo", args=[project.pk]), {}).content.decode()
    assert "Undone" in body
    assert f'data-clip="{leased.pk}"' in body and ">kosa</textarea>" in body


def test_skip_through_the_page(client_for, annotator, project, leased):
    client = client_for(annotator)
    body = htmx(
        client,
        reverse("annotate_skip", args=[project.pk, leased.pk]),
        {"lease_token": leased.lease_token},
    ).content.decode()
    assert "Skipped" in body and f'data-clip="{leased.pk}"' not in body


def test_an_empty_queue_says_so(client_for, annotator, project):
    body = client_for(annotator).get(reverse("annotate", args=[project.pk])).content.decode()
    assert "Nothing to transcribe right now" in body


def test_a_script_in_a_transcript_stays_text_everywhere(
    client_for, annotator, reviewer, project, leased
):
    project.alphabet += "<>/()1"
    project.save()
    evil = "<script>alert(1)</script>"
    client_for(annotator).post(
        submit_url(project, leased), {"lease_token": leased.lease_token, "text": evil}
    )
    assert Transcript.objects.get().text == evil
    for url in (reverse("review", args=[project.pk]), reverse("stats", args=[project.pk])):
        body = client_for(reviewer).get(url).content.decode()
        assert "<script>alert(1)" not in body
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;"
        in client_for(reviewer).get(reverse("review", args=[project.pk])).content.decode()
    )


def test_clip_audio_is_served_to_members_only(client_for, annotator, outsider, project, leased):
    url = reverse("clip_audio", args=[project.pk, leased.pk])
    response = client_for(annotator).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    assert response.content[:4] == b"RIFF"
    assert client_for(outsider).get(url).status_code == 404


def test_a_clip_of_another_project_is_404_even_through_my_project(
    client_for, owner, project, other_project, make_clips
):
    (foreign,) = make_clips(other_project, count=1)
    url = reverse("clip_audio", args=[project.pk, foreign.pk])
    assert client_for(owner).get(url).status_code == 404


def test_reviewers_accept_with_an_edit(client_for, annotator, reviewer, project, leased):
    client_for(annotator).post(
        submit_url(project, leased), {"lease_token": leased.lease_token, "text": "sawa"}
    )
    transcript = Transcript.objects.get()
    client = client_for(reviewer)
    response = client.post(
        reverse("review_decide", args=[project.pk, transcript.pk]),
        {"action": "accept", "text": "sawa kabisa"},
        follow=True,
    )
    assert "Accepted." in response.content.decode()
    assert Transcript.objects.get(status="accepted").text == "sawa kabisa"


def test_a_review_edit_must_respect_the_alphabet(client_for, annotator, reviewer, project, leased):
    client_for(annotator).post(
        submit_url(project, leased), {"lease_token": leased.lease_token, "text": "sawa"}
    )
    transcript = Transcript.objects.get()
    response = client_for(reviewer).post(
        reverse("review_decide", args=[project.pk, transcript.pk]),
        {"action": "accept", "text": "sawa 42"},
        follow=True,
    )
    assert "not in the alphabet: 4 2" in response.content.decode()
    transcript.refresh_from_db()
    assert transcript.status == "submitted"


def test_the_stats_page_lists_annotators(client_for, annotator, project, leased):
    client_for(annotator).post(
        submit_url(project, leased), {"lease_token": leased.lease_token, "text": "moja"}
    )
    body = client_for(annotator).get(reverse("stats", args=[project.pk])).content.decode()
    assert "<td>amina</td>" in body


def test_a_refused_submit_keeps_the_lease_it_was_written_under(
    client_for, annotator, reviewer, project, leased
):
    from datetime import timedelta

    from django.utils import timezone

    mine = leased.lease_token
    Clip.objects.filter(pk=leased.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    queue.clip_lease_next(project=project, user=reviewer)  # the clip is theirs now
    theirs = Clip.objects.get(pk=leased.pk).lease_token
    body = (
        client_for(annotator)
        .post(submit_url(project, leased), {"lease_token": mine, "text": " "})
        .content.decode()
    )
    assert f'value="{mine}"' in body and str(theirs) not in body


def test_a_submit_with_a_made_up_lease_says_it_waits_for_a_reviewer(
    client_for, annotator, project, leased
):
    import uuid

    other = Clip.objects.exclude(pk=leased.pk).first()
    data = {"lease_token": uuid.uuid4(), "text": "habari"}

    body = htmx(client_for(annotator), submit_url(project, other), data).content.decode()

    assert "Saved for a reviewer: this clip was no longer reserved for you." in body
    other.refresh_from_db()
    assert other.status == "unlabeled" and other.split == ""
    assert Transcript.objects.get(clip=other).conflict
