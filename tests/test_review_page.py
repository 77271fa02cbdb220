"""The Review page at scale: pages, filters, and others' transcripts by default."""

import uuid

import pytest
from django.urls import reverse

from labeling.models import Clip, Transcript

pytestmark = pytest.mark.django_db


def waiting(clip, author, text="habari yako", **fields) -> Transcript:
    return Transcript.objects.create(
        clip=clip, author=author, lease_token=uuid.uuid4(), text=text, **fields
    )


def listed(client, project, query="") -> str:
    return client.get(reverse("review", args=[project.pk]) + query).content.decode()


def test_thirty_waiting_come_in_pages_of_twenty_five(
    client_for, project, make_clips, annotator, reviewer
):
    for clip in make_clips(project, count=30, seconds=1.0):
        waiting(clip, annotator)
    client = client_for(reviewer)

    first, second = listed(client, project), listed(client, project, "?page=2")

    assert first.count('class="card review-item"') == 25 and "page 1 of 2" in first
    assert second.count('class="card review-item"') == 5 and "← Earlier" in second


def test_my_own_transcripts_are_left_out_unless_i_ask(
    client_for, project, make_clips, annotator, reviewer
):
    mine, theirs = make_clips(project, count=2)
    waiting(mine, reviewer, text="nimeandika mwenyewe")
    waiting(theirs, annotator, text="ameandika mwingine")
    client = client_for(reviewer)

    body = listed(client, project)

    assert "ameandika mwingine" in body and "nimeandika mwenyewe" not in body
    assert "Your own 1 transcript waiting is not listed" in body
    assert "nimeandika mwenyewe" in listed(client, project, "?mine=1")


@pytest.mark.parametrize(
    "query, shown",
    [
        ("?show=flagged", "kelele tu"),
        ("?show=disagreements", "mbili tofauti"),
        ("?show=changed", "imebadilika kabisa sasa"),
        ("?show=low-confidence", "sina uhakika"),
        ("?annotator=olga", "mbili tofauti"),
    ],
)
def test_each_filter_lists_what_it_names(
    client_for, project, make_clips, annotator, reviewer, owner, query, shown
):
    clips = make_clips(project, count=5)
    waiting(clips[0], annotator, text="kelele tu", flag="noise")
    waiting(clips[1], owner, text="mbili tofauti", conflict=True)
    waiting(clips[2], annotator, text="imebadilika kabisa sasa", draft_text="habari")
    Clip.objects.filter(pk=clips[3].pk).update(draft_confidence=0.2)
    waiting(clips[3], annotator, text="sina uhakika", draft_text="sina uhakika")
    waiting(clips[4], annotator, text="kawaida", draft_text="kawaida")

    body = listed(client_for(reviewer), project, query)

    assert body.count('class="card review-item"') == 1 and shown in body


def test_a_decision_comes_back_to_the_same_filters(
    client_for, project, make_clips, annotator, reviewer
):
    clip = make_clips(project, count=1)[0]
    transcript = waiting(clip, annotator, flag="noise", text="")

    response = client_for(reviewer).post(
        reverse("review_decide", args=[project.pk, transcript.pk]),
        {"action": "accept", "text": "", "filters": "show=flagged&next=https://evil.example"},
    )

    assert response["Location"] == reverse("review", args=[project.pk]) + "?show=flagged"
