from django.db.models import Count, QuerySet

from labeling.models import Membership, Project


def projects_for_user(user) -> QuerySet[Membership]:
    """The user's memberships, each with its project and the project's member count."""
    return (
        Membership.objects.filter(user_id=user.pk)
        .select_related("project")
        .annotate(member_count=Count("project__memberships"))
        .order_by("project__name")
    )


def project_members(project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("user__username")
