"""Using the model: the transcribe page, the JSON API with personal tokens, the model zip."""

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from asr.checkpoint import save_ctc_model
from asr.model import build_tiny_ctc_model
from training.models import ApiToken, ModelVersion, TrainingRound, TranscriptionJob
from training.transcription import api_token_create
from training.worker.base_models import project_vocabulary
from training.worker.transcriber import transcription_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def promoted(project, tmp_path):
    directory = tmp_path / "round-1"
    save_ctc_model(build_tiny_ctc_model(project_vocabulary(project)), directory)
    training_round = TrainingRound.objects.create(
        project=project,
        number=1,
        base="builtin:tiny",
        status="succeeded",
        labeled_minutes=3.5,
        train_clip_ids=[1, 2, 3],
    )
    return ModelVersion.objects.create(
        project=project,
        round=training_round,
        directory=str(directory),
        labeled_minutes=3.5,
        test_wer=0.42,
        test_cer=0.17,
        test_clips=2,
        promoted=True,
    )


def audio(path, name="talk.wav"):
    return SimpleUploadedFile(name, path.read_bytes())


def api_post(client, project, key, file):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(
        reverse("api_transcriptions", args=[project.pk]), {"audio": file}, headers=headers
    )


def test_the_api_transcribes_long_audio_through_segmentation(
    client, annotator, project, promoted, speech_recording
):
    _, key = api_token_create(user=annotator, name="laptop")
    response = api_post(client, project, key, audio(speech_recording))
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued" and job["model_round"] == 1
    transcription_run(job_id=job["id"])
    done = client.get(job["url"], headers={"Authorization": f"Bearer {key}"}).json()
    assert done["status"] == "succeeded"
    assert len(done["segments"]) >= 5
    starts = [s["start"] for s in done["segments"]]
    assert starts == sorted(starts) and done["segments"][-1]["end"] <= done["duration"] + 0.1


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [(None, 401, "Authorization: Bearer"), ("vrn_wrong", 401, "not valid")],
)
def test_the_api_refuses_a_missing_or_wrong_token(
    client, project, promoted, speech_recording, key, status, message
):
    response = api_post(client, project, key, audio(speech_recording))
    assert response.status_code == status and message in response.json()["error"]
    assert not TranscriptionJob.objects.exists()


def test_the_api_refuses_other_projects_models(
    client, outsider, project, promoted, speech_recording
):
    _, key = api_token_create(user=outsider, name="x")
    response = api_post(client, project, key, audio(speech_recording))
    assert response.status_code == 404
    own = TranscriptionJob.objects.create(project=project, original_name="a.wav", audio="x")
    detail = client.get(
        reverse("api_transcription", args=[project.pk, own.pk]),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert detail.status_code == 404


def test_the_api_says_when_there_is_no_model_yet(client, annotator, project, speech_recording):
    _, key = api_token_create(user=annotator, name="x")
    response = api_post(client, project, key, audio(speech_recording))
    assert response.status_code == 409 and "no promoted model" in response.json()["error"]


def test_the_api_rejects_non_audio(client, annotator, project, promoted):
    _, key = api_token_create(user=annotator, name="x")
    response = api_post(client, project, key, SimpleUploadedFile("notes.mp3", b"hello" * 100))
    assert response.status_code == 400 and response.json()["error"].startswith(
        "notes.mp3: not readable"
    )


def test_tokens_are_stored_hashed_and_can_be_revoked(
    client, client_for, annotator, project, promoted, speech_recording
):
    page = (
        client_for(annotator).post(reverse("api_tokens"), {"name": "field laptop"}).content.decode()
    )
    key = page.split('<code id="new-token">')[1].split("</code>")[0]
    token = ApiToken.objects.get()
    assert key.startswith(token.prefix) and key not in token.key_hash
    client_for(annotator).post(reverse("api_tokens"), {"revoke": token.pk})
    assert api_post(client, project, key, audio(speech_recording)).status_code == 401


def test_the_transcribe_page_queues_a_job_and_lists_it(
    client_for, annotator, project, promoted, speech_recording
):
    client = client_for(annotator)
    response = client.post(
        reverse("transcribe", args=[project.pk]),
        {"audio": audio(speech_recording, "meeting.wav")},
        follow=True,
    )
    body = response.content.decode()
    assert "meeting.wav: queued for transcription." in body
    assert 'data-status="queued"' in body and 'hx-trigger="every 2s"' in body


def test_the_model_zip_is_a_transformers_folder_with_a_card(
    client_for, owner, project, promoted, tmp_path
):
    from transformers import AutoModelForCTC, AutoProcessor

    response = client_for(owner).get(reverse("model_download", args=[project.pk, 1]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    archive.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / "round-1"
    card = (folder / "README.md").read_text()
    assert "Test WER: 42.0%" in card and "Labeled audio: 3.5 minutes" in card and "`sw`" in card
    model = AutoModelForCTC.from_pretrained(folder, local_files_only=True)
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    assert model.config.vocab_size == len(processor.tokenizer)


def test_the_cards_recipe_and_transformers_pipeline_transcribe_as_the_app_does(
    client_for, owner, project, promoted, tmp_path
):
    """The zip's folder, loaded by transformers alone in a process that cannot import our
    code: the card's own snippet and pipeline("automatic-speech-recognition") both give the
    app's greedy text for a real clip."""
    import subprocess
    import sys

    import numpy as np

    from asr.audio import decode_audio
    from asr.checkpoint import load_ctc_model
    from asr.model import transcribe_clips

    response = client_for(owner).get(reverse("model_download", args=[project.pk, 1]))
    zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).extractall(tmp_path / "z")
    folder = tmp_path / "z" / "round-1"
    from tests.conftest import real_speech_dir

    samples = decode_audio(sorted(real_speech_dir().glob("*.wav"))[0])
    np.save(tmp_path / "clip.npy", samples)
    expected = transcribe_clips(load_ctc_model(folder), [samples])[0].text
    card = (folder / "README.md").read_text()
    recipe = (
        card.split("```python\n")[1].split("```")[0].replace("path/to/this/folder", str(folder))
    )
    program = (
        "import sys, numpy as np\n"
        f"samples_16khz_mono = np.load({str(tmp_path / 'clip.npy')!r})\n"
        + recipe
        + "from transformers import pipeline\n"
        + f"print(pipeline('automatic-speech-recognition', model={str(folder)!r})"
        + "(samples_16khz_mono)['text'])\n"
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", program],  # -I: no cwd, no PYTHONPATH, no user site
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    card_line, pipeline_line = run.stdout.strip().splitlines()[-2:]
    assert card_line == str([expected])  # the snippet prints batch_decode's list
    assert pipeline_line == expected


def test_a_whisper_based_card_says_how_to_load_it(project, promoted, tmp_path):
    from training.exports import model_card

    assert "AutoModelForCTC.from_pretrained" in model_card(promoted)
    (tmp_path / "round-1" / "whisper_ctc.json").write_text("{}")
    card = model_card(promoted)
    assert "load_ctc_model" in card and "from_pretrained" not in card


def test_revoking_someone_elses_token_id_says_nothing_was_revoked(client_for, annotator, owner):
    token, _ = api_token_create(user=owner, name="owner's laptop")

    response = client_for(annotator).post(reverse("api_tokens"), {"revoke": token.pk}, follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "You have no such token; nothing was revoked."
    ]
    assert ApiToken.objects.filter(pk=token.pk).exists()
