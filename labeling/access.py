"""The one per-project access check every project page goes through.

Outsiders get 404 (they may not even learn that a project exists); members whose role is
too low get 403.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from labeling.models import Membership, Project, Role


def project_for(user, project_id: int, *, role: str = Role.ANNOTATOR) -> tuple[Project, Membership]:
    membership = (
        Membership.objects.select_related("project")
        .filter(project_id=project_id, user_id=user.pk)
        .first()
    )
    if membership is None:
        raise Http404("No such project.")
    if not membership.has_role(role):
        raise PermissionDenied(f"This needs the {Role(role).label.lower()} role in this project.")
    return membership.project, membership
