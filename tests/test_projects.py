import pytest
from django.urls import reverse

from labeling.models import Membership, Project

pytestmark = pytest.mark.django_db

VALID = {
    "name": "Runa Simi",
    "language_code": "quz",
    "alphabet": "a c h i k l m n ñ p q r s t u w y '",
    "lowercase": "on",
    "strip_chars": ".,?!",
    "test_minutes_target": "10",
    "dev_minutes_target": "5",
    "lease_minutes": "20",
    "clip_min_seconds": "1",
    "clip_max_seconds": "15",
}


def test_creating_a_project_makes_me_its_manager(client_for, owner):
    response = client_for(owner).post(reverse("project_create"), VALID)
    project = Project.objects.get(name="Runa Simi")
    assert response.status_code == 302
    assert response["Location"] == reverse("project_detail", args=[project.pk])
    assert Membership.objects.get(project=project, user=owner).role == "manager"
    # Whitespace between the characters is for legibility; the stored alphabet is deduplicated.
    assert project.alphabet == "achiklmnñpqrstuwy'"
    assert project.lowercase is True


def test_the_alphabet_is_nfc_normalized(client_for, owner):
    decomposed = "a" + "e\u0301"  # é as e + combining acute
    client_for(owner).post(reverse("project_create"), {**VALID, "alphabet": decomposed})
    assert Project.objects.get().alphabet_chars() == ["a", "\u00e9"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "   ", "This field is required."),
        ("alphabet", "  \n ", "This field is required."),
        ("language_code", "Swahili!", "BCP 47"),
    ],
)
def test_it_rejects_bad_fields_next_to_the_field(client_for, owner, field, value, message):
    response = client_for(owner).post(reverse("project_create"), {**VALID, field: value})
    assert response.status_code == 200
    assert not Project.objects.exists()
    assert message in " ".join(response.context["form"].errors[field])
    assert f'id="id_{field}_error"' in response.content.decode()


def test_it_rejects_a_duplicate_of_my_own_project_name_whatever_its_case(
    client_for, owner, project
):
    response = client_for(owner).post(reverse("project_create"), {**VALID, "name": "kiSWAhili"})
    assert response.status_code == 200
    assert "You have a project called" in " ".join(response.context["form"].errors["name"])
    assert Project.objects.count() == 1


def test_someone_elses_project_name_is_no_obstacle_and_no_oracle(client_for, outsider, project):
    response = client_for(outsider).post(reverse("project_create"), {**VALID, "name": "Kiswahili"})
    assert response.status_code == 302
    assert Project.objects.filter(name="Kiswahili").count() == 2


def test_it_rejects_stripping_a_character_of_the_alphabet(client_for, owner):
    response = client_for(owner).post(reverse("project_create"), {**VALID, "strip_chars": "'."})
    assert "cannot be stripped: '" in " ".join(response.context["form"].errors["strip_chars"])
    assert not Project.objects.exists()


def test_a_manager_edits_settings(client_for, owner, project):
    url = reverse("project_settings", args=[project.pk])
    data = {**VALID, "name": "Kiswahili (Pwani)", "lowercase": ""}
    response = client_for(owner).post(url, data)
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.name == "Kiswahili (Pwani)"
    assert project.lowercase is False


def test_a_new_project_draws_test_and_dev_by_recording_and_a_manager_can_choose_by_clip(
    client_for, owner, project
):
    url = reverse("project_settings", args=[project.pk])
    assert project.split_by == "recording"
    assert "Draw test and dev" in client_for(owner).get(url).content.decode()

    client_for(owner).post(url, {**VALID, "split_by": "clip"})
    project.refresh_from_db()
    assert project.split_by == "clip"
    client_for(owner).post(url, VALID)  # a form without the field keeps it
    project.refresh_from_db()
    assert project.split_by == "clip"


def test_settings_keep_the_same_name_without_calling_it_a_duplicate(client_for, owner, project):
    url = reverse("project_settings", args=[project.pk])
    response = client_for(owner).post(url, {**VALID, "name": "Kiswahili"})
    assert response.status_code == 302


def test_the_overview_shows_alphabet_and_members(client_for, annotator, project):
    body = client_for(annotator).get(reverse("project_detail", args=[project.pk])).content.decode()
    assert '<span class="char">ñ</span>' not in body
    assert '<span class="char">w</span>' in body
    assert "ravi" in body and "olga" in body
    # Annotators do not see the manager's tabs.
    assert reverse("project_settings", args=[project.pk]) not in body


def test_names_are_escaped(client_for, owner):
    client_for(owner).post(reverse("project_create"), {**VALID, "name": "<script>x()</script>"})
    body = client_for(owner).get(reverse("project_list")).content.decode()
    assert "<script>x()" not in body
    assert "&lt;script&gt;x()" in body


def test_an_uppercase_alphabet_with_lowercasing_on_is_refused(client_for, owner):
    response = client_for(owner).post(reverse("project_create"), {**VALID, "alphabet": "ABCabc"})
    assert "can never occur: A B C" in " ".join(response.context["form"].errors["alphabet"])
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    ("typed", "stored"), [("SW", "sw"), ("nds_nl", "nds-NL"), ("sr-latn-rs", "sr-Latn-RS")]
)
def test_language_tags_get_their_usual_case(client_for, owner, typed, stored):
    client_for(owner).post(reverse("project_create"), {**VALID, "language_code": typed})
    assert Project.objects.get().language_code == stored


def test_combining_marks_show_on_a_dotted_circle(owner):
    from labeling import services

    project = services.project_create(
        name="Yorùbá", language_code="yo", alphabet="aẹ\u0301", created_by=owner
    )
    assert project.alphabet_display() == ["a", "ẹ", "\u25cc\u0301"]


def test_clip_bounds_must_leave_room_to_cut(client_for, owner):
    data = {**VALID, "clip_min_seconds": "8", "clip_max_seconds": "12"}
    response = client_for(owner).post(reverse("project_create"), data)
    assert "at least twice" in " ".join(response.context["form"].errors["clip_max_seconds"])
