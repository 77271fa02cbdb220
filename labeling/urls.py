from django.urls import path

from labeling import annotation_views as annotation
from labeling import views

urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("projects/new/", views.project_create, name="project_create"),
    path("projects/<int:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<int:project_id>/settings/", views.project_settings, name="project_settings"),
    path("projects/<int:project_id>/members/", views.project_members, name="project_members"),
    path(
        "projects/<int:project_id>/invitations/<int:invitation_id>/withdraw/",
        views.invitation_withdraw,
        name="invitation_withdraw",
    ),
    path(
        "invitations/<int:invitation_id>/",
        views.invitation_respond,
        name="invitation_respond",
    ),
    path(
        "projects/<int:project_id>/members/<int:membership_id>/role/",
        views.member_role,
        name="member_role",
    ),
    path(
        "projects/<int:project_id>/members/<int:membership_id>/remove/",
        views.member_remove,
        name="member_remove",
    ),
    path("projects/<int:project_id>/recordings/", annotation.recording_list, name="recording_list"),
    path(
        "projects/<int:project_id>/recordings/upload/",
        annotation.recording_upload,
        name="recording_upload",
    ),
    path(
        "projects/<int:project_id>/recordings/<int:recording_id>/retry/",
        annotation.recording_retry,
        name="recording_retry",
    ),
    path(
        "projects/<int:project_id>/clips/<int:clip_id>/audio/",
        annotation.clip_audio,
        name="clip_audio",
    ),
    path(
        "projects/<int:project_id>/clips/<int:clip_id>/context/",
        annotation.clip_context_audio,
        name="clip_context_audio",
    ),
    path("accounts/keys/", annotation.key_bindings, name="key_bindings"),
    path("projects/<int:project_id>/annotate/", annotation.annotate, name="annotate"),
    path(
        "projects/<int:project_id>/annotate/<int:clip_id>/unsent/",
        annotation.annotate_unsent,
        name="annotate_unsent",
    ),
    path(
        "projects/<int:project_id>/annotate/<int:clip_id>/later/",
        annotation.annotate_later,
        name="annotate_later",
    ),
    path(
        "projects/<int:project_id>/annotate/mine/", annotation.annotate_mine, name="annotate_mine"
    ),
    path(
        "projects/<int:project_id>/annotate/mine/<int:transcript_id>/",
        annotation.annotate_mine,
        name="annotate_mine_one",
    ),
    path(
        "projects/<int:project_id>/annotate/mine/<int:transcript_id>/edit/",
        annotation.annotate_mine_edit,
        name="annotate_mine_edit",
    ),
    path(
        "projects/<int:project_id>/annotate/<int:clip_id>/boundaries/",
        annotation.annotate_boundaries,
        name="annotate_boundaries",
    ),
    path(
        "projects/<int:project_id>/annotate/<int:clip_id>/submit/",
        annotation.annotate_submit,
        name="annotate_submit",
    ),
    path(
        "projects/<int:project_id>/annotate/<int:clip_id>/skip/",
        annotation.annotate_skip,
        name="annotate_skip",
    ),
    path(
        "projects/<int:project_id>/annotate/undo/", annotation.annotate_undo, name="annotate_undo"
    ),
    path("projects/<int:project_id>/review/", annotation.review, name="review"),
    path(
        "projects/<int:project_id>/review/<int:transcript_id>/",
        annotation.review_decide,
        name="review_decide",
    ),
    path("projects/<int:project_id>/stats/", annotation.stats, name="stats"),
    path(
        "projects/<int:project_id>/export/labeled.zip",
        annotation.export_manifest,
        name="export_manifest",
    ),
    path("projects/<int:project_id>/export/labeled.csv", annotation.export_csv, name="export_csv"),
    path("projects/<int:project_id>/import/", annotation.import_manifest, name="import_manifest"),
    path(
        "projects/<int:project_id>/export/elan-praat.zip",
        annotation.export_annotations,
        name="export_annotations",
    ),
    path(
        "projects/<int:project_id>/import/annotated/",
        annotation.import_annotated,
        name="import_annotated",
    ),
]
