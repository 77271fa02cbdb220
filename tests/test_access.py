"""The access matrix: every URL the app has, for every kind of visitor.

A new URL fails `test_every_url_is_in_the_matrix` until it is added here with its rule.
"""

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from labeling.models import Invitation, Membership, Transcript
from training.models import ModelVersion, TrainingRound

pytestmark = pytest.mark.django_db

# name -> (method, minimum role; None = any logged-in user, not tied to a project)
MATRIX = {
    "project_list": ("get", None),
    "project_create": ("get", None),
    "system_status": ("get", None),
    "gpu_wait": ("get", None),
    "key_bindings": ("post", None),
    "project_detail": ("get", "annotator"),
    "project_settings": ("get", "manager"),
    "project_members": ("get", "manager"),
    "member_role": ("post", "manager"),
    "member_remove": ("post", "manager"),
    "invitation_withdraw": ("post", "manager"),
    "recording_list": ("get", "manager"),
    "recording_upload": ("post", "manager"),
    "recording_retry": ("post", "manager"),
    "clip_audio": ("get", "annotator"),
    "clip_context_audio": ("get", "annotator"),
    "annotate": ("get", "annotator"),
    "annotate_submit": ("post", "annotator"),
    "annotate_skip": ("post", "annotator"),
    "annotate_boundaries": ("post", "annotator"),
    # Sent by the page's script as one types: a bare POST has no lease, and the answer says so.
    "annotate_unsent": ("post", "annotator", 400),
    "annotate_later": ("post", "annotator"),
    "annotate_mine": ("get", "annotator"),
    "annotate_mine_one": ("get", "annotator"),
    "annotate_mine_edit": ("post", "annotator"),
    "annotate_undo": ("post", "annotator"),
    "review": ("get", "reviewer"),
    "review_decide": ("post", "reviewer"),
    "stats": ("get", "annotator"),
    "export_manifest": ("get", "manager"),
    "export_csv": ("get", "manager"),
    "import_manifest": ("post", "manager"),
    "import_annotated": ("post", "manager"),
    "export_annotations": ("get", "manager"),
    "dashboard": ("get", "annotator"),
    "round_start": ("post", "manager"),
    "round_cancel": ("post", "manager"),
    "round_retry": ("post", "manager"),
    "model_version": ("get", "annotator"),
    "training_settings": ("post", "manager"),
    "model_download": ("get", "manager"),
    "model_offline_build": ("post", "manager"),
    "model_offline_download": ("get", "manager"),
    "transcribe": ("get", "annotator"),
    "api_tokens": ("get", None),
}
# Served by Django itself: auth pages are tested in test_auth.py, admin needs staff.
# The JSON API authenticates by token, not session: tests/test_api.py.
OUTSIDE_MATRIX = {
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "api_transcriptions",
    "api_transcription",
    "invitation_respond",  # addressed to one user, whatever their projects: test_members.py
}
RANK = {"annotator": 1, "reviewer": 2, "manager": 3}


def app_url_names() -> set[str]:
    names = set()

    def walk(patterns):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if entry.app_name != "admin":
                    walk(entry.url_patterns)
            elif isinstance(entry, URLPattern) and entry.name:
                names.add(entry.name)

    walk(get_resolver().url_patterns)
    return names


@pytest.fixture
def objects(project, annotator, make_clips, tmp_path):
    """One of each object a URL can name, all in `project`."""
    clip = make_clips(project, count=1)[0]
    transcript = Transcript.objects.create(
        clip=clip, author=annotator, lease_token=uuid.uuid4(), text="x"
    )
    return {
        "project_id": project.pk,
        "membership_id": project.memberships.get(user=annotator).pk,
        "recording_id": clip.recording_id,
        "clip_id": clip.pk,
        "transcript_id": transcript.pk,
        "number": finished_round(project, tmp_path).number,
        "invitation_id": Invitation.objects.create(project=project, username="zawadi").pk,
    }


def finished_round(project, tmp_path) -> TrainingRound:
    training_round = TrainingRound.objects.create(project=project, number=1, base="builtin:tiny")
    (tmp_path / "model").mkdir()
    for name in ("config.json", "vocab.json", "model.safetensors"):
        (tmp_path / "model" / name).write_text("{}")
    (tmp_path / "offline").mkdir()
    (tmp_path / "offline" / "README.md").write_text("# offline")
    ModelVersion.objects.create(
        project=project,
        round=training_round,
        directory=str(tmp_path / "model"),
        labeled_minutes=1,
        offline_status="ready",
    )
    return training_round


def url_for(name: str, values: dict) -> str:
    possibilities = get_resolver().reverse_dict.getlist(name)[0][0]
    params = possibilities[0][1]
    return reverse(name, kwargs={param: values[param] for param in params})


def request(client, method: str, url: str):
    # A harmless body: the role form sets the annotator's role to what it already is, and
    # the other forms refuse it (no lease token, no action) with a redirect and a message.
    return (
        getattr(client, method)(url, {"role": "annotator"}) if method == "post" else client.get(url)
    )


def test_every_url_is_in_the_matrix():
    assert app_url_names() - OUTSIDE_MATRIX == set(MATRIX)


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_anonymous_visitors_are_sent_to_login(client, name, objects):
    method = MATRIX[name][0]
    response = request(client, method, url_for(name, objects))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", sorted(n for n, (_, role, *_) in MATRIX.items() if role))
def test_outsiders_get_404(client_for, name, objects, outsider, other_project):
    method = MATRIX[name][0]
    response = request(client_for(outsider), method, url_for(name, objects))
    assert response.status_code == 404


@pytest.mark.parametrize("name", sorted(MATRIX))
@pytest.mark.parametrize("who", ["annotator", "reviewer", "owner"])
def test_each_role_gets_exactly_what_it_may(
    client_for, request_fixture, name, who, project, objects
):
    method, needed, *allowed_status = MATRIX[name]
    user = request_fixture(who)
    response = request(client_for(user), method, url_for(name, objects))
    role = project.memberships.get(user=user).role
    if needed is None or RANK[role] >= RANK[needed]:
        assert response.status_code == (allowed_status or [302 if method == "post" else 200])[0]
    else:
        assert response.status_code == 403


@pytest.fixture
def request_fixture(request):
    return request.getfixturevalue


@pytest.mark.parametrize("name", ["member_role", "member_remove"])
def test_a_manager_cannot_touch_another_projects_members(
    client_for, name, project, owner, other_project
):
    foreign = other_project.memberships.get()
    url = reverse(name, kwargs={"project_id": project.pk, "membership_id": foreign.pk})
    response = client_for(owner).post(url, {"role": "annotator"})
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.role == "manager"


def test_post_only_urls_refuse_get(client_for, project, owner, annotator):
    membership = project.memberships.get(user=annotator)
    url = reverse(
        "member_remove", kwargs={"project_id": project.pk, "membership_id": membership.pk}
    )
    assert client_for(owner).get(url).status_code == 405
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_project_list_shows_only_my_projects(client_for, project, other_project, annotator):
    body = client_for(annotator).get(reverse("project_list")).content.decode()
    assert "Kiswahili" in body
    assert "Gàidhlig" not in body


@pytest.mark.parametrize(
    "name", sorted(n for n, (method, *_) in MATRIX.items() if method == "post")
)
def test_every_post_needs_a_csrf_token(name, owner, objects):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(url_for(name, objects), {"role": "annotator"})
    assert response.status_code == 403
    assert "security token" in response.content.decode()
