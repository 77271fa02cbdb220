import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from labeling.models import Invitation, Membership

pytestmark = pytest.mark.django_db


def add(client, project, username, role="annotator", account="invite", **kwargs):
    return client.post(
        reverse("project_members", args=[project.pk]),
        {"username": username, "role": role, "account": account},
        **kwargs,
    )


def test_an_existing_account_is_invited_and_joins_only_when_it_accepts(
    client_for, owner, project, outsider
):
    add(client_for(owner), project, "oscar", role="reviewer")
    assert not Membership.objects.filter(project=project, user=outsider).exists()
    mine = client_for(outsider)
    page = mine.get(reverse("project_list")).content.decode()
    assert "olga invites you as reviewer" in page

    invitation = Invitation.objects.get()
    mine.post(reverse("invitation_respond", args=[invitation.pk]), {"action": "accept"})

    assert Membership.objects.get(project=project, user=outsider).role == "reviewer"
    assert not Invitation.objects.exists()


def test_declining_an_invitation_leaves_me_out(client_for, owner, project, outsider):
    add(client_for(owner), project, "oscar")
    invitation = Invitation.objects.get()
    client_for(outsider).post(reverse("invitation_respond", args=[invitation.pk]), {})
    assert not Membership.objects.filter(project=project, user=outsider).exists()
    assert not Invitation.objects.exists()


def test_someone_elses_invitation_is_a_404(client_for, owner, project, outsider, annotator):
    add(client_for(owner), project, "oscar")
    invitation = Invitation.objects.get()
    response = client_for(annotator).post(
        reverse("invitation_respond", args=[invitation.pk]), {"action": "accept"}
    )
    assert response.status_code == 404
    assert Invitation.objects.exists()


def test_inviting_a_name_with_no_account_reads_exactly_like_inviting_one_that_has(
    client_for, owner, project, outsider
):
    client = client_for(owner)

    def told(username):
        response = add(client, project, username, follow=True)
        said = [str(m) for m in response.context["messages"]]
        listed = response.content.decode().count(f"<td>{username}</td>")
        return [m.replace(username, "NAME") for m in said], listed

    assert told("oscar") == told("nobody-here")
    assert told("oscar")[0] == [
        "Invited NAME. An account by that name sees the invitation on its Projects page, "
        "and joins when it accepts."
    ]


def test_creating_an_account_gives_a_one_time_password(client_for, owner, project):
    response = add(client_for(owner), project, "zawadi", account="create", follow=True)
    text = response.content.decode()
    assert "New account: their first password is " in text
    password = text.split("their first password is ")[1].split(" ")[0]
    user = get_user_model().objects.get(username="zawadi")
    assert user.check_password(password)
    assert Membership.objects.filter(project=project, user=user).exists()


def test_creating_an_account_under_a_taken_name_never_adds_that_account(
    client_for, owner, project, outsider
):
    response = add(client_for(owner), project, "Oscar", account="create")
    assert response.status_code == 200
    assert "That username is taken" in " ".join(response.context["form"].errors["username"])
    assert not Membership.objects.filter(project=project, user=outsider).exists()
    assert outsider.check_password("correct horse battery staple")


def test_inviting_a_member_says_they_are_one_already(client_for, owner, project):
    response = add(client_for(owner), project, "amina", role="manager")
    assert response.status_code == 200
    assert "already a member" in " ".join(response.context["form"].errors["username"])
    assert Membership.objects.get(project=project, user__username="amina").role == "annotator"


def test_a_manager_withdraws_an_invitation(client_for, owner, project, outsider):
    client = client_for(owner)
    add(client, project, "oscar")
    invitation = Invitation.objects.get()
    client.post(reverse("invitation_withdraw", args=[project.pk, invitation.pk]))
    assert not Invitation.objects.exists()


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


def test_an_account_created_after_an_invitation_to_its_name_does_not_inherit_it(
    client_for, owner, project, make_user
):
    add(client_for(owner), project, "zawadi", role="manager")  # no such account yet
    invitation = Invitation.objects.get()
    latecomer = make_user("zawadi")  # someone takes the name afterwards

    page = client_for(latecomer).get(reverse("project_list")).content.decode()
    response = client_for(latecomer).post(
        reverse("invitation_respond", args=[invitation.pk]), {"action": "accept"}
    )

    assert "invites you" not in page
    assert response.status_code == 404
    assert not Membership.objects.filter(project=project, user=latecomer).exists()


def test_an_invitation_reaches_its_account_whatever_the_case_of_the_name(
    client_for, owner, project, outsider
):
    add(client_for(owner), project, "OSCAR")
    page = client_for(outsider).get(reverse("project_list")).content.decode()
    assert "olga invites you as annotator" in page
