"""Every view that takes a body has a size limit, checked before the body is read."""

import socket

import pytest
from django.urls import reverse

from training.models import TranscriptionJob
from training.transcription import api_token_create

pytestmark = pytest.mark.django_db


def test_a_huge_body_to_the_api_is_refused_from_its_length_alone(client, annotator, project):
    _, key = api_token_create(user=annotator, name="x")
    response = client.post(
        reverse("api_transcriptions", args=[project.pk]),
        data=b"--x--",
        content_type="multipart/form-data; boundary=x",
        headers={"Authorization": f"Bearer {key}"},
        CONTENT_LENGTH=str(1_500_000_000),
    )
    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert not TranscriptionJob.objects.exists()


@pytest.mark.parametrize(
    ("name", "extra"),
    [("annotate_submit", [1]), ("review", []), ("project_settings", []), ("transcribe", [])],
)
def test_a_form_view_refuses_a_body_over_its_limit_with_a_page(
    client_for, owner, project, name, extra, settings
):
    settings.VERNACULAR_MAX_UPLOAD_MB = 1
    response = client_for(owner).post(
        reverse(name, args=[project.pk, *extra]),
        data=b"x" * 10,
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(20 * 2**20),
    )
    assert response.status_code == 413
    assert "The request is too large" in response.content.decode()


def test_a_form_view_takes_an_ordinary_body(client_for, owner, project):
    response = client_for(owner).post(reverse("project_settings", args=[project.pk]), {})
    assert response.status_code == 200  # the form, with its errors


@pytest.mark.django_db(transaction=True)
def test_a_real_server_answers_413_without_waiting_for_the_body(live_server, annotator, project):
    _, key = api_token_create(user=annotator, name="x")
    host, port = live_server.url.removeprefix("http://").split(":")
    path = reverse("api_transcriptions", args=[project.pk])
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            "Content-Length: 1500000000\r\n\r\n--x\r\n".encode()
        )
        # A server that read the body would wait here for 1.5 GB that never comes.
        answer = connection.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413")
