"""Writes to projects, memberships and invitations. Views call these; nothing else changes
these rows.

Nothing here tells a manager whether an account exists: an existing account is invited by
name and joins only when it accepts; a manager who creates an account learns only that the
name is free or taken, as on any sign-up form.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.models import Invitation, Membership, Project, Role
from labeling.selectors import invitations_for_user


@transaction.atomic
def project_create(
    *, name: str, language_code: str, alphabet: str, created_by, **options
) -> Project:
    """A new project with its creator as manager. `options`: the other Project settings
    (lowercase, strip_chars, targets, clip bounds...), defaults otherwise."""
    project = Project.objects.create(
        name=name, language_code=language_code, alphabet=alphabet, created_by=created_by, **options
    )
    membership_create(project=project, user=created_by, role=Role.MANAGER)
    return project


# No look-alikes (0/O, 1/l/I): these passwords are read aloud or copied from paper.
HANDOVER_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def handover_password(groups: int = 3) -> str:
    """e.g. 'kq7m-x3vd-9pwe': 60 bits, easy to read out and type on a phone."""
    return "-".join(
        "".join(secrets.choice(HANDOVER_ALPHABET) for _ in range(4)) for _ in range(groups)
    )


def membership_create(*, project: Project, user, role: str) -> Membership:
    """A member at once: for the project's creator, an accepted invitation, a new account."""
    if Membership.objects.filter(project=project, user=user).exists():
        raise ValidationError(f"{user.username} is already a member of this project.")
    return Membership.objects.create(project=project, user=user, role=role)


@transaction.atomic
def member_account_create(*, project: Project, username: str, role: str) -> tuple[Membership, str]:
    """A new account, a member at once, and its one-time first password (there is no e-mail
    in a self-hosted setup, so the manager hands it over)."""
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError(
            "That username is taken. Choose another, or invite the account it belongs to."
        )
    password = handover_password()
    user = User.objects.create_user(username=username, password=password)
    return membership_create(project=project, user=user, role=role), password


def membership_invite(*, project: Project, username: str, role: str, invited_by) -> Invitation:
    """An invitation by name, whether or not such an account exists (see the module doc)."""
    if project.memberships.filter(user__username__iexact=username).exists():
        raise ValidationError(f"{username} is already a member of this project.")
    invitation, _ = Invitation.objects.update_or_create(
        project=project, username=username, defaults={"role": role, "invited_by": invited_by}
    )
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user) -> Membership:
    if not invitations_for_user(user).filter(pk=invitation.pk).exists():
        raise ValidationError("This invitation is for someone else.")
    membership = Membership.objects.filter(project=invitation.project, user=user).first()
    if membership is None:
        membership = membership_create(project=invitation.project, user=user, role=invitation.role)
    invitation.delete()
    return membership


def invitation_delete(*, invitation: Invitation) -> None:
    """Declined by the invitee, or withdrawn by a manager."""
    invitation.delete()


def _locked_other_managers(membership: Membership) -> bool:
    # Lock the project row so two managers demoting each other cannot both succeed.
    Project.objects.select_for_update().filter(pk=membership.project_id).first()
    return (
        Membership.objects.filter(project_id=membership.project_id, role=Role.MANAGER)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str) -> Membership:
    if (
        membership.role == Role.MANAGER
        and role != Role.MANAGER
        and not _locked_other_managers(membership)
    ):
        raise ValidationError("A project needs at least one manager.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    if membership.role == Role.MANAGER and not _locked_other_managers(membership):
        raise ValidationError("A project needs at least one manager.")
    membership.delete()
