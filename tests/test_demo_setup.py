import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from labeling.models import Membership, Project

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
    assert (project.test_minutes_target, project.dev_minutes_target) == (3.0, 1.0)

    user.set_password("changed by the user")
    user.save()
    call_command("demo_setup", corpus_clips=12)
    second = capsys.readouterr().out
    user.refresh_from_db()
    assert user.check_password("changed by the user")
    assert "unless you changed it" in second
    assert Project.objects.count() == 1
    # The demo corpus: one long recording (12 synthetic utterances), queued for ingest, once.
    (recording,) = project.recordings.all()
    assert recording.original_name == "recording_000.wav" and recording.status == "queued"
    assert 20 < recording.duration_seconds < 120
