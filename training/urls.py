from django.urls import path

from training import views

urlpatterns = [
    path("status/", views.system_status, name="system_status"),
    path("projects/<int:project_id>/dashboard/", views.dashboard, name="dashboard"),
    path("projects/<int:project_id>/rounds/start/", views.round_start, name="round_start"),
    path(
        "projects/<int:project_id>/rounds/<int:number>/cancel/",
        views.round_cancel,
        name="round_cancel",
    ),
    path(
        "projects/<int:project_id>/rounds/<int:number>/", views.model_version, name="model_version"
    ),
    path(
        "projects/<int:project_id>/training-settings/",
        views.training_settings,
        name="training_settings",
    ),
]
