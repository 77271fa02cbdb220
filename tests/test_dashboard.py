"""The model dashboard: curve, rounds, progress, settings, and the worst-first test clips."""

import json
import uuid

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from labeling import services
from tests.conftest import wait_until
from training.models import ModelVersion, TrainingRound
from training.selectors import word_diff

pytestmark = pytest.mark.django_db


def finished_round(project, number, minutes, wer, cer, promoted=False, details=(), wer_lm=None):
    training_round = TrainingRound.objects.create(
        project=project,
        number=number,
        base="builtin:tiny",
        status="succeeded",
        labeled_minutes=minutes,
        train_minutes=minutes,
    )
    ModelVersion.objects.create(
        project=project,
        round=training_round,
        directory="/nowhere",
        labeled_minutes=minutes,
        test_wer=wer,
        test_cer=cer,
        test_wer_lm=wer_lm,
        dev_cer=cer,
        promoted=promoted,
        test_details=list(details),
    )
    return training_round


def curve(body: str) -> list[dict]:
    start = body.index('<script id="curve-points" type="application/json">') + len(
        '<script id="curve-points" type="application/json">'
    )
    return json.loads(body[start : body.index("</script>", start)])


def test_one_point_per_finished_round_with_a_test_set(client_for, annotator, project):
    finished_round(project, 1, 5.0, 0.9, 0.4)
    finished_round(project, 2, 10.0, 0.7, 0.25, promoted=True, wer_lm=0.5)
    TrainingRound.objects.create(project=project, number=3, base="x", status="failed", error="boom")
    body = client_for(annotator).get(reverse("dashboard", args=[project.pk])).content.decode()
    assert curve(body) == [
        {"round": 1, "minutes": 5.0, "wer": 0.9, "cer": 0.4, "wer_lm": None, "promoted": False},
        {"round": 2, "minutes": 10.0, "wer": 0.7, "cer": 0.25, "wer_lm": 0.5, "promoted": True},
    ]
    assert '<tr data-round="2"' in body and "50%" in body  # the WER-with-LM column
    assert "boom" in body
    assert "Start a round" not in body  # annotators watch; managers start rounds


def test_starting_without_labels_says_why(client_for, owner, project):
    response = client_for(owner).post(reverse("round_start", args=[project.pk]), follow=True)
    assert "Nothing to train on yet" in response.content.decode()
    assert not TrainingRound.objects.exists()


def test_an_active_round_polls_its_progress(client_for, owner, project):
    TrainingRound.objects.create(
        project=project,
        number=1,
        base="b",
        status="running",
        step=30,
        total_steps=120,
        loss=2.5,
        eta_seconds=90,
        phase="train",
        worker="gpu@box",
    )
    client = client_for(owner)
    page = client.get(reverse("dashboard", args=[project.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in page and "Cancel round 1" in page
    fragment = client.get(reverse("dashboard", args=[project.pk]), headers={"HX-Request": "true"})
    text = fragment.content.decode()
    assert text.lstrip().startswith('<div id="round-status"')
    assert "step 30 of 120" in text and "loss 2.500" in text and "gpu@box" in text
    assert '<progress max="1" value="0.25">' in text


def test_cancel_a_running_round_from_the_page(client_for, owner, project):
    running = TrainingRound.objects.create(project=project, number=1, base="b", status="running")
    client_for(owner).post(reverse("round_cancel", args=[project.pk, 1]))
    running.refresh_from_db()
    assert running.cancel_requested and running.status == "running"


def test_training_settings_are_validated(client_for, owner, project):
    client = client_for(owner)
    response = client.post(
        reverse("training_settings", args=[project.pk]),
        {
            "base_model": "/models/xls-r-300m",
            "auto_round_minutes": "-3",
            "train_from_promoted": "on",
            "selection": "longest",
        },
        follow=True,
    )
    assert "above 0" in response.content.decode()
    assert "longest is not one of the available choices" in response.content.decode()
    client.post(
        reverse("training_settings", args=[project.pk]),
        {
            "base_model": "/models/xls-r-300m",
            "auto_round_minutes": "5",
            "train_from_promoted": "on",
            "selection": "new-words",
        },
    )
    project.refresh_from_db()
    assert (project.base_model, project.auto_round_minutes) == ("/models/xls-r-300m", 5.0)
    assert project.selection == "new-words"


def test_the_version_page_lists_test_clips_worst_first_with_differences(
    client_for, annotator, project, make_clips
):
    a, b = make_clips(project, count=2)
    details = [
        {
            "clip": a.pk,
            "reference": "habari yako",
            "hypothesis": "habari yako",
            "wer": 0.0,
            "cer": 0.0,
        },
        {
            "clip": b.pk,
            "reference": "<b>jambo</b> rafiki",
            "hypothesis": "jambo rafik",
            "wer": 1.0,
            "cer": 0.2,
        },
    ]
    finished_round(project, 1, 3.0, 0.5, 0.1, details=details)
    body = (
        client_for(annotator).get(reverse("model_version", args=[project.pk, 1])).content.decode()
    )
    assert body.index(f"clip {b.pk} ·") < body.index(f"clip {a.pk} ·")
    assert '<span class="diff-missing">&lt;b&gt;jambo&lt;/b&gt; rafiki</span>' in body
    assert '<span class="diff-extra">jambo rafik</span>' in body
    assert reverse("clip_audio", args=[project.pk, b.pk]) in body


def test_word_diff_marks_missing_and_extra_words():
    assert word_diff("a b c d", "a x c") == [
        ("same", "a"),
        ("missing", "b"),
        ("extra", "x"),
        ("same", "c"),
        ("missing", "d"),
    ]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_chart_shows_one_point_per_finished_round(
    page, live_server, django_user_model, settings
):
    settings.VERNACULAR_DEFAULT_BASE_MODEL = "builtin:whisper-base"  # as shipped (the page says)
    lead = django_user_model.objects.create_user(username="lead", password="pass-word-123")
    project = services.project_create(
        name="Curve", language_code="sw", alphabet="abc", created_by=lead
    )
    finished_round(project, 1, 5.0, 0.9, 0.45)
    finished_round(project, 2, 12.5, 0.6, 0.2, promoted=True, wer_lm=0.3)
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill("lead")
    page.get_by_label("Password").fill("pass-word-123")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Curve").click()
    page.get_by_role("link", name="Model", exact=True).click()
    expect(page.locator("#curve")).to_be_visible()
    # polled from here: wait_for_function's in-page polling evaluates a string, which the
    # page's CSP (no 'unsafe-eval') refuses whenever the first check comes too early
    wait_until(
        lambda: page.evaluate("window.vernacularChart !== undefined"), timeout=20, what="the chart"
    )
    points = page.evaluate(
        "window.vernacularChart.data.datasets.map(d => d.data.map(p => [p.x, p.y]))"
    )
    # WER, WER with the LM (only round 2 has it: no point for round 1), CER
    assert points == [[[5.0, 90.0], [12.5, 60.0]], [[12.5, 30.0]], [[5.0, 45.0], [12.5, 20.0]]]
    expect(page.locator('tr[data-round="2"]')).to_contain_text("promoted")


def test_a_running_round_shows_dashes_not_empty_rates(client_for, owner, project):
    TrainingRound.objects.create(project=project, number=1, base="b", status="running")
    body = client_for(owner).get(reverse("dashboard", args=[project.pk])).content.decode()
    row = body[
        body.index('<tr data-round="1"') : body.index("</tr>", body.index('<tr data-round="1"'))
    ]
    assert "%" not in row and row.count("—") >= 3


def label_as(project, user, split, clips):
    from labeling import queue
    from labeling.models import Clip

    for clip in clips:
        Clip.objects.filter(pk=clip.pk).update(split=split)
        clip.refresh_from_db()
        Clip.objects.filter(pk=clip.pk).update(lease_user=user, lease_token=uuid.uuid4())
        clip.refresh_from_db()
        queue.transcript_submit(clip=clip, user=user, lease_token=clip.lease_token, text="sawa")


def test_targets_larger_than_the_audio_are_named_on_the_overview_and_dashboard(
    client_for, owner, project, make_clips
):
    make_clips(project, count=3)  # 6 s of clips against 10 + 5 minutes wanted

    for url in (
        reverse("project_detail", args=[project.pk]),
        reverse("dashboard", args=[project.pk]),
    ):
        body = client_for(owner).get(url).content.decode()
        assert "The test and dev sets want 15 min and the project has 0.1 min of clips" in body


def test_a_test_set_from_one_recording_and_recordings_in_test_and_train_are_named(
    client_for, owner, annotator, project, make_clips
):
    from labeling.selectors import split_warnings

    project.test_minutes_target = project.dev_minutes_target = 0
    project.save()
    mixed = make_clips(project, count=4)
    label_as(project, annotator, "test", mixed[:2])
    label_as(project, annotator, "train", mixed[2:])

    warnings = split_warnings(project)

    assert any("Every test clip comes from one recording" in w for w in warnings)
    assert any(
        w.startswith("1 recording has clips both in the test or dev set and in training")
        for w in warnings
    )
    other = make_clips(project, count=2)
    label_as(project, annotator, "test", other[:1])
    assert not any("one recording" in w for w in split_warnings(project))


def test_the_chart_counts_the_minutes_trained_on_not_test_and_dev(
    client_for, annotator, project, make_clips
):
    finished = finished_round(project, 1, 5.0, 0.9, 0.4)
    TrainingRound.objects.filter(pk=finished.pk).update(labeled_minutes=20.0, train_minutes=5.0)
    clips = make_clips(project, count=3, seconds=4.0)  # a round from before train_minutes
    older = finished_round(project, 2, 0.0, 0.8, 0.3)
    TrainingRound.objects.filter(pk=older.pk).update(
        labeled_minutes=9.0, train_minutes=None, train_clip_ids=[c.pk for c in clips[:2]]
    )

    body = client_for(annotator).get(reverse("dashboard", args=[project.pk])).content.decode()

    assert [point["minutes"] for point in curve(body)] == [5.0, round(8.0 / 60, 2)]


def test_a_queued_round_says_which_queue_it_waits_on_and_where_to_check_it(
    client_for, owner, project
):
    TrainingRound.objects.create(project=project, number=1, base="b", status="queued")

    body = client_for(owner).get(reverse("dashboard", args=[project.pk])).content.decode()

    assert "Waiting for a worker on the gpu queue" in body
    assert "A round waits until a worker on the <code>gpu</code> queue is free" in body
    assert f'href="{reverse("system_status")}">the Workers page</a>' in body


def test_the_round_page_shows_live_progress_and_reloads_once_the_round_ends(
    client_for, annotator, project
):
    live = TrainingRound.objects.create(
        project=project,
        number=1,
        base="b",
        status="running",
        step=40,
        total_steps=200,
        loss=1.25,
        eta_seconds=120,
        phase="train",
        log="17:01:02 step 40\n",
    )
    client = client_for(annotator)
    url = reverse("model_version", args=[project.pk, 1])

    page = client.get(url).content.decode()
    fragment = client.get(url, headers={"HX-Request": "true"})

    assert 'hx-trigger="every 2s"' in page and "step 40 of 200" in page
    assert fragment.content.decode().lstrip().startswith('<div id="round-progress"')
    assert (
        "loss 1.250" in fragment.content.decode()
        and "about 120 s left" in fragment.content.decode()
    )
    TrainingRound.objects.filter(pk=live.pk).update(status="succeeded")
    finished = client.get(url, headers={"HX-Request": "true"})
    assert finished.headers["HX-Refresh"] == "true"
    assert 'hx-trigger="every 2s"' not in client.get(url).content.decode()
