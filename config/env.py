"""Tiny typed readers for settings from the environment."""

import json
import os

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def round_settings(text: str) -> dict:
    """VERNACULAR_ROUND_SETTINGS: a JSON object of asr.recipe.RoundConfig fields, checked here
    so a typo stops the start with its name rather than failing every round."""
    from asr.recipe import RoundConfig, round_config  # no torch: safe at start-up

    try:
        values = json.loads(text or "{}")
    except ValueError as error:
        raise ImproperlyConfigured(f"VERNACULAR_ROUND_SETTINGS is not JSON: {error}") from None
    if not isinstance(values, dict):
        raise ImproperlyConfigured("VERNACULAR_ROUND_SETTINGS must be a JSON object")
    try:
        round_config("", 0, values)
    except (TypeError, ValueError) as error:
        fields = ", ".join(RoundConfig.__dataclass_fields__)
        raise ImproperlyConfigured(
            f"VERNACULAR_ROUND_SETTINGS: {error} (the settings are: {fields})"
        ) from None
    return values


def s3_storage(bucket: str, endpoint_url: str = "", region: str = "") -> dict:
    """STORAGES["default"] for an S3-compatible bucket (AWS, MinIO, Garage...) through
    django-storages. Credentials come the way boto3 finds them (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, or the machine's role). Objects stay private: the app serves clip
    audio itself, after its access check, so the bucket needs no public URL."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,  # never replace an object that holds someone's audio
        },
    }
