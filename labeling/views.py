from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from labeling import selectors, services
from labeling.access import project_for
from labeling.forms import MemberAddForm, MemberRoleForm, ProjectForm
from labeling.models import Invitation, Membership, Role
from training.selectors import next_step


def project_list(request):
    context = {
        "memberships": selectors.projects_for_user(request.user),
        "invitations": selectors.invitations_for_user(request.user),
    }
    return render(request, "labeling/project_list.html", context)


@require_POST
def invitation_respond(request, invitation_id: int):
    # Only the invitee sees an invitation; anyone else gets the 404 of a missing one.
    invitation = get_object_or_404(selectors.invitations_for_user(request.user), pk=invitation_id)
    if request.POST.get("action") == "accept":
        membership = services.invitation_accept(invitation=invitation, user=request.user)
        messages.success(
            request,
            f"You joined “{membership.project.name}” as {membership.get_role_display().lower()}.",
        )
        return redirect("project_detail", membership.project_id)
    services.invitation_delete(invitation=invitation)
    messages.success(request, f"Invitation to “{invitation.project.name}” declined.")
    return redirect("project_list")


def project_create(request):
    form = ProjectForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        project = services.project_create(**form.cleaned_data, created_by=request.user)
        messages.success(request, f"Project “{project.name}” created. You are its manager.")
        return redirect("project_detail", project.pk)
    return render(request, "labeling/project_form.html", {"form": form})


def project_detail(request, project_id: int):
    project, membership = project_for(request.user, project_id)
    context = {
        "project": project,
        "membership": membership,
        "members": selectors.project_members(project),
        "split_warnings": selectors.split_warnings(project),
        "next_step": next_step(project),
    }
    return render(request, "labeling/project_detail.html", context)


def project_settings(request, project_id: int):
    project, membership = project_for(request.user, project_id, role=Role.MANAGER)
    form = ProjectForm(request.POST or None, instance=project)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Settings saved.")
        return redirect("project_detail", project.pk)
    context = {"project": project, "membership": membership, "form": form}
    return render(request, "labeling/project_form.html", context)


def project_members(request, project_id: int):
    project, membership = project_for(request.user, project_id, role=Role.MANAGER)
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        username, role = form.cleaned_data["username"], form.cleaned_data["role"]
        try:
            if form.cleaned_data["account"] == MemberAddForm.CREATE:
                added, password = services.member_account_create(
                    project=project, username=username, role=role
                )
                text = (
                    f"{username} added as {added.get_role_display().lower()}. New account: "
                    f"their first password is {password} (shown once)."
                )
            else:
                services.membership_invite(
                    project=project, username=username, role=role, invited_by=request.user
                )
                text = (
                    f"Invited {username}. An account by that name sees the invitation on its "
                    "Projects page, and joins when it accepts."
                )
        except ValidationError as error:
            form.add_error("username", error)
        else:
            messages.success(request, text)
            return redirect("project_members", project.pk)
    context = {
        "project": project,
        "membership": membership,
        "members": selectors.project_members(project),
        "invitations": project.invitations.all(),
        "form": form,
        "roles": Role.choices,
    }
    return render(request, "labeling/project_members.html", context)


@require_POST
def invitation_withdraw(request, project_id: int, invitation_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    invitation = get_object_or_404(Invitation, pk=invitation_id, project=project)
    services.invitation_delete(invitation=invitation)
    messages.success(request, f"Invitation for {invitation.username} withdrawn.")
    return redirect("project_members", project.pk)


@require_POST
def member_role(request, project_id: int, membership_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    target = get_object_or_404(Membership, pk=membership_id, project=project)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
        return redirect("project_members", project.pk)
    try:
        services.membership_set_role(membership=target, role=form.cleaned_data["role"])
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(
            request, f"{target.user.username} is now {target.get_role_display().lower()}."
        )
    return redirect("project_members", project.pk)


@require_POST
def member_remove(request, project_id: int, membership_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    target = get_object_or_404(Membership, pk=membership_id, project=project)
    try:
        services.membership_remove(membership=target)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, f"{target.user.username} removed from the project.")
    return redirect("project_members", project.pk)
