from django.urls import path

from training import api, views

urlpatterns = [
    path("status/", views.system_status, name="system_status"),
    path("status/gpu-wait/", views.gpu_wait, name="gpu_wait"),
    path("projects/<int:project_id>/dashboard/", views.dashboard, name="dashboard"),
    path("projects/<int:project_id>/rounds/start/", views.round_start, name="round_start"),
    path(
        "projects/<int:project_id>/rounds/<int:number>/retry/",
        views.round_retry,
        name="round_retry",
    ),
    path(
        "projects/<int:project_id>/rounds/<int:number>/cancel/",
        views.round_cancel,
        name="round_cancel",
    ),
    path(
        "projects/<int:project_id>/rounds/<int:number>/", views.model_version, name="model_version"
    ),
    path(
        "projects/<int:project_id>/rounds/<int:number>/model.zip",
        views.model_download,
        name="model_download",
    ),
    path(
        "projects/<int:project_id>/rounds/<int:number>/offline/build/",
        views.model_offline_build,
        name="model_offline_build",
    ),
    path(
        "projects/<int:project_id>/rounds/<int:number>/offline.zip",
        views.model_offline_download,
        name="model_offline_download",
    ),
    path(
        "projects/<int:project_id>/training-settings/",
        views.training_settings,
        name="training_settings",
    ),
    path("projects/<int:project_id>/transcribe/", views.transcribe, name="transcribe"),
    path("accounts/tokens/", views.api_tokens, name="api_tokens"),
    path(
        "api/projects/<int:project_id>/transcriptions/",
        api.transcriptions,
        name="api_transcriptions",
    ),
    path(
        "api/projects/<int:project_id>/transcriptions/<int:job_id>/",
        api.transcription_detail,
        name="api_transcription",
    ),
]
