import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from labeling.models import Membership, Project, Transcript
from labeling.selectors import clip_minutes

pytestmark = pytest.mark.django_db


def test_demo_setup_creates_a_manager_and_a_project_and_a_second_run_changes_nothing(
    settings, tmp_path, capsys
):
    settings.DATA_DIR = tmp_path
    call_command("demo_setup", corpus_clips=12)
    first = capsys.readouterr().out
    password = (tmp_path / "demo-password").read_text().strip()
    user = get_user_model().objects.get(username="demo")
    assert user.check_password(password)
    assert f"Password    {password}" in first
    project = Project.objects.get()
    assert Membership.objects.get(project=project, user=user).role == "manager"
    assert project.is_demo
    first_labels = Transcript.objects.count()

    user.set_password("changed by the user")
    user.save()
    call_command("demo_setup", corpus_clips=12)
    second = capsys.readouterr().out
    user.refresh_from_db()
    assert user.check_password("changed by the user")
    assert "unless you changed it" in second
    assert Project.objects.count() == 1
    # The demo corpus, cut into clips on the spot, once: 12 synthetic utterances in
    # recordings of 10, each clip with the true text of what it says.
    assert Transcript.objects.count() == first_labels
    assert sorted(project.recordings.values_list("original_name", "status")) == [
        ("recording_000.wav", "ready"),
        ("recording_001.wav", "ready"),
    ]
    truth = [json.loads(line) for line in (tmp_path / "demo-corpus/recordings_truth.jsonl").open()]
    clips = list(project.clips.order_by("recording__original_name", "start_sample"))
    assert 10 <= len(clips) <= 14  # the cutter may split or join an utterance or two
    said = " ".join(clip.answer_key for clip in clips)
    assert said == " ".join(row["text"] for row in truth)


def test_the_demo_opens_with_test_and_dev_sets_labeled_from_its_answer_key_and_a_first_round(
    settings, tmp_path, capsys
):
    settings.DATA_DIR = tmp_path
    call_command("demo_setup", corpus_clips=30)
    project = Project.objects.get()
    # Targets scaled to the demo's clips: a fifth of them for test, a fifteenth for dev.
    minutes = clip_minutes(project.clips.all())
    assert project.test_minutes_target == round(minutes / 5, 1)
    assert project.dev_minutes_target == round(minutes / 15, 1)
    labels = Transcript.objects.filter(clip__project=project)
    assert {t.author.username for t in labels} == {"demo-answer-key"}
    assert all(t.text == t.clip.answer_key for t in labels)
    labeled = {
        split: clip_minutes(project.clips.filter(split=split).exclude(status="unlabeled"))
        for split in ("test", "dev", "train")
    }
    assert labeled["test"] >= project.test_minutes_target
    assert labeled["dev"] >= project.dev_minutes_target
    assert minutes / 5 <= labeled["train"] < minutes / 5 + 0.3  # then it stops: the rest is to try
    assert project.clips.filter(split__in=["", "train"], status="unlabeled").exists()
    # The first round is queued with those labels.
    (training_round,) = project.rounds.all()
    assert (
        len(training_round.test_clip_ids)
        == project.clips.filter(split="test", status="submitted").count()
    )
    assert training_round.train_minutes == pytest.approx(labeled["train"], abs=0.01)
    assert training_round.status == "queued"
    assert "Round 1 is queued" in capsys.readouterr().out
    # the answer-key account cannot log in
    assert not get_user_model().objects.get(username="demo-answer-key").has_usable_password()
