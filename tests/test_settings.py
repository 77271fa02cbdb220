"""Settings come from the environment; production refuses unsafe defaults."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Variables the rest of the suite may set in this process, which a deployment would not have.
NOT_INHERITED = ("SECRET_KEY", "DATABASE_URL", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
PRINT = "from django.conf import settings as s; print(s.SECRET_KEY, s.DEBUG, s.DATABASES['default']['ENGINE'])"


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    base["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_development_generates_a_secret_key_once_and_keeps_it(tmp_path):
    first = run(PRINT, VERNACULAR_DATA_DIR=str(tmp_path))
    second = run(PRINT, VERNACULAR_DATA_DIR=str(tmp_path))
    key = (tmp_path / "secret_key").read_text().strip()
    assert first.stdout.split()[0] == second.stdout.split()[0] == key
    assert len(key) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert first.stdout.split()[1:] == ["False", "django.db.backends.sqlite3"]


def test_production_requires_a_secret_key(tmp_path):
    result = run(PRINT, VERNACULAR_DATA_DIR=str(tmp_path), VERNACULAR_PRODUCTION="1")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_production_turns_debug_off_and_passes_the_deploy_check(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in NOT_INHERITED},
        "VERNACULAR_DATA_DIR": str(tmp_path),
        "VERNACULAR_PRODUCTION": "1",
        "SECRET_KEY": "x" * 20 + "9s8d7f6g5h4j3k2l1qwertyuiopasdfghjklzxcvbnm",
        "ALLOWED_HOSTS": "asr.example.org",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    debug = run("from django.conf import settings as s; print(s.DEBUG)", **env)
    assert debug.stdout.strip() == "False"


def test_database_url_selects_postgresql(tmp_path):
    result = run(PRINT, VERNACULAR_DATA_DIR=str(tmp_path), DATABASE_URL="postgres://u:p@db:5432/v")
    assert result.stdout.split()[2] == "django.db.backends.postgresql"


def test_round_settings_come_from_the_environment_and_a_typo_is_named(tmp_path):
    show = "from django.conf import settings as s; print(s.VERNACULAR_ROUND_CONFIG)"
    good = run(
        show,
        VERNACULAR_DATA_DIR=str(tmp_path),
        VERNACULAR_ROUND_SETTINGS='{"unfreeze_top_layers": 2}',
    )
    assert good.stdout.strip() == "{'unfreeze_top_layers': 2}"
    typo = run(show, VERNACULAR_DATA_DIR=str(tmp_path), VERNACULAR_ROUND_SETTINGS='{"unfreze": 2}')
    assert typo.returncode != 0
    assert "VERNACULAR_ROUND_SETTINGS: unknown round settings: unfreze" in typo.stderr
    broken = run(show, VERNACULAR_DATA_DIR=str(tmp_path), VERNACULAR_ROUND_SETTINGS="{unfreeze")
    assert "VERNACULAR_ROUND_SETTINGS is not JSON" in broken.stderr
    quoted = run(
        show,
        VERNACULAR_DATA_DIR=str(tmp_path),
        VERNACULAR_ROUND_SETTINGS='{"pseudo_weight": "0.3"}',
    )
    assert "VERNACULAR_ROUND_SETTINGS: pseudo_weight must be float, not '0.3'" in quoted.stderr
    empty = run(show, VERNACULAR_DATA_DIR=str(tmp_path), VERNACULAR_ROUND_SETTINGS="")
    assert empty.stdout.strip() == "{}"


def test_debug_is_on_only_when_asked_and_never_in_production(tmp_path):
    show = "from django.conf import settings as s; print(s.DEBUG)"
    assert run(show, VERNACULAR_DATA_DIR=str(tmp_path)).stdout.strip() == "False"
    assert run(show, VERNACULAR_DATA_DIR=str(tmp_path), DEBUG="1").stdout.strip() == "True"
    production = {
        "VERNACULAR_PRODUCTION": "1",
        "SECRET_KEY": "k" * 50,
        "ALLOWED_HOSTS": "asr.example.org",
        "DEBUG": "1",
    }
    assert run(show, VERNACULAR_DATA_DIR=str(tmp_path), **production).stdout.strip() == "False"


def test_the_sqlite_database_file_is_readable_by_its_owner_only(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in NOT_INHERITED},
            "VERNACULAR_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("db.sqlite3*"))
    assert files and all(path.stat().st_mode & 0o777 == 0o600 for path in files), [
        (path.name, oct(path.stat().st_mode)) for path in files
    ]


def test_every_page_names_an_icon_the_server_serves(client):
    body = client.get("/accounts/login/").content.decode()
    href = body.split('rel="icon" href="')[1].split('"')[0]

    response = client.get(href)

    assert response.status_code == 200
    assert b"<svg" in b"".join(response.streaming_content)
