import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from labeling.models import Membership

pytestmark = pytest.mark.django_db


def test_a_manager_adds_an_existing_user(client_for, owner, project, outsider):
    response = client_for(owner).post(
        reverse("project_members", args=[project.pk]), {"username": "oscar", "role": "reviewer"}
    )
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=outsider).role == "reviewer"


def test_adding_a_new_name_creates_an_account_with_a_one_time_password(client_for, owner, project):
    client = client_for(owner)
    response = client.post(
        reverse("project_members", args=[project.pk]),
        {"username": "zawadi", "role": "annotator"},
        follow=True,
    )
    text = response.content.decode()
    assert "New account: their first password is " in text
    password = text.split("their first password is ")[1].split(" ")[0]
    assert get_user_model().objects.get(username="zawadi").check_password(password)


def test_adding_a_member_twice_says_so(client_for, owner, project):
    response = client_for(owner).post(
        reverse("project_members", args=[project.pk]), {"username": "amina", "role": "manager"}
    )
    assert response.status_code == 200
    assert "already a member" in " ".join(response.context["form"].errors["username"])
    assert Membership.objects.get(project=project, user__username="amina").role == "annotator"


def test_a_bad_username_is_refused(client_for, owner, project):
    response = client_for(owner).post(
        reverse("project_members", args=[project.pk]), {"username": "a b/c", "role": "annotator"}
    )
    assert response.status_code == 200
    assert not get_user_model().objects.filter(username="a b/c").exists()


def test_the_last_manager_cannot_step_down_or_leave(client_for, owner, project):
    mine = project.memberships.get(user=owner)
    client = client_for(owner)
    response = client.post(
        reverse("member_role", args=[project.pk, mine.pk]), {"role": "annotator"}, follow=True
    )
    assert "at least one manager" in response.content.decode()
    client.post(reverse("member_remove", args=[project.pk, mine.pk]))
    mine.refresh_from_db()
    assert mine.role == "manager"


def test_with_a_second_manager_the_first_may_leave(client_for, owner, reviewer, project):
    client = client_for(owner)
    theirs = project.memberships.get(user=reviewer)
    client.post(reverse("member_role", args=[project.pk, theirs.pk]), {"role": "manager"})
    mine = project.memberships.get(user=owner)
    client.post(reverse("member_remove", args=[project.pk, mine.pk]))
    assert not project.memberships.filter(user=owner).exists()
    # Having left, the project is gone for them.
    assert client.get(reverse("project_detail", args=[project.pk])).status_code == 404


def test_an_unknown_role_is_refused(client_for, owner, annotator, project):
    theirs = project.memberships.get(user=annotator)
    client_for(owner).post(reverse("member_role", args=[project.pk, theirs.pk]), {"role": "god"})
    theirs.refresh_from_db()
    assert theirs.role == "annotator"


def test_handover_passwords_avoid_look_alike_characters():
    from labeling.services import handover_password

    passwords = {handover_password() for _ in range(200)}
    assert len(passwords) == 200
    assert not set("".join(passwords)) & set("0O1lI")
    assert all(len(p) == 14 and p.count("-") == 2 for p in passwords)
