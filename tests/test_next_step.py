"""The Overview's next step, through the states a new project goes through."""

import pytest
from django.urls import reverse

from labeling.models import Clip, Recording
from tests.test_dashboard import finished_round
from training.models import TrainingRound
from training.selectors import next_step

pytestmark = pytest.mark.django_db


def label(clips, split):
    Clip.objects.filter(pk__in=[c.pk for c in clips]).update(split=split, status="submitted")


def test_the_next_step_follows_the_project_from_no_recordings_to_a_finished_round(
    project, make_clips, client_for, owner, annotator
):
    project.test_minutes_target, project.dev_minutes_target = 0.1, 0.05
    project.save()
    assert next_step(project).state == "no-recordings"
    page = client_for(owner).get(reverse("project_detail", args=[project.pk])).content.decode()
    assert 'data-state="no-recordings"' in page and "Upload recordings" in page
    page = client_for(annotator).get(reverse("project_detail", args=[project.pk])).content.decode()
    assert "A manager of the project uploads them" in page

    Recording.objects.create(
        project=project, original_name="a.wav", size_bytes=1, sha256="x", duration_seconds=60
    )
    assert next_step(project).headline == "1 recording is being cut into clips"

    clips = make_clips(project, count=12, seconds=2.0)  # 0.4 min
    step = next_step(project)
    assert (step.state, step.headline) == ("test", "Transcribe the test set: 0.0 of 0.1 min")
    label(clips[:3], "test")  # 6 s: 0.1 min
    assert next_step(project).state == "dev"
    label(clips[3:5], "dev")
    assert next_step(project).state == "train"
    label(clips[5:8], "train")
    step = next_step(project)
    assert (step.state, step.headline) == ("ready", "Ready for the first round")
    assert "0.1 labeled minutes to train on." in step.detail

    running = TrainingRound.objects.create(project=project, number=1, base="b", train_minutes=0.1)
    assert next_step(project).headline == "Round 1 is queued"
    running.status = "failed"
    running.error = "The worker died."
    running.save()
    assert (next_step(project).state, next_step(project).detail) == ("failed", "The worker died.")

    running.delete()
    finished_round(project, 1, 0.1, wer=0.42, cer=0.081)
    step = next_step(project)
    assert (step.state, step.headline) == ("done", "Round 1: test WER 42%, CER 8%")
    page = client_for(owner).get(reverse("project_detail", args=[project.pk])).content.decode()
    assert "See the chart and its errors" in page

    label(clips[8:], "train")  # a minute more would make the next round worth it; 8 s is not
    assert next_step(project).state == "done"
    more = make_clips(project, count=40, seconds=2.0)
    label(more, "train")
    step = next_step(project)
    assert (step.state, step.headline) == ("ready", "Ready for the next round")
    assert "new since round 1" in step.detail
