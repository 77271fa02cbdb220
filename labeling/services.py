"""Writes to projects and memberships. Views call these; nothing else changes these rows."""

import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.models import Membership, Project, Role


@transaction.atomic
def project_create(
    *, name: str, language_code: str, alphabet: str, created_by, **options
) -> Project:
    """A new project with its creator as manager. `options`: the other Project settings
    (lowercase, strip_chars, targets, clip bounds...), defaults otherwise."""
    project = Project.objects.create(
        name=name, language_code=language_code, alphabet=alphabet, created_by=created_by, **options
    )
    Membership.objects.create(project=project, user=created_by, role=Role.MANAGER)
    return project


# No look-alikes (0/O, 1/l/I): these passwords are read aloud or copied from paper.
HANDOVER_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def handover_password(groups: int = 3) -> str:
    """e.g. 'kq7m-x3vd-9pwe': 60 bits, easy to read out and type on a phone."""
    return "-".join(
        "".join(secrets.choice(HANDOVER_ALPHABET) for _ in range(4)) for _ in range(groups)
    )


@transaction.atomic
def membership_add(*, project: Project, username: str, role: str) -> tuple[Membership, str | None]:
    """Adds a user to the project, creating the account if it does not exist yet.

    Returns the membership and, for a new account, its one-time initial password (there is
    no e-mail in a self-hosted setup, so the manager hands it over).
    """
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    initial_password = None
    if user is None:
        initial_password = handover_password()
        user = User.objects.create_user(username=username, password=initial_password)
    if Membership.objects.filter(project=project, user=user).exists():
        raise ValidationError(f"{username} is already a member of this project.")
    membership = Membership.objects.create(project=project, user=user, role=role)
    return membership, initial_password


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
