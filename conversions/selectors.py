"""Reads shared by several views: what a user may see, and what the API can convert."""

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import QuerySet
from django.http import Http404

from conversions.cloudconvert.client import api_config, get_client
from conversions.cloudconvert.errors import ApiError
from conversions.models import ConversionJob, OutputFile

logger = logging.getLogger(__name__)

FORMATS_CACHE_SECONDS = 600


def jobs_visible_to(user: AbstractBaseUser) -> QuerySet[ConversionJob]:
    return ConversionJob.objects.filter(user=user).prefetch_related("files")


def job_for_user(*, user: AbstractBaseUser, uuid: object) -> ConversionJob:
    """The job, or 404 for anyone who may not see it (no hint that it exists)."""
    job = jobs_visible_to(user).filter(uuid=uuid).first()
    if job is None:
        raise Http404("No such conversion.")
    return job


def file_for_user(*, user: AbstractBaseUser, uuid: object) -> OutputFile:
    output = OutputFile.objects.select_related("job").filter(uuid=uuid, job__user=user).first()
    if output is None:
        raise Http404("No such file.")
    return output


def conversion_formats() -> list[dict]:
    """The API's convert operations ({input_format, output_format, meta, ...}), cached.

    Raises ApiError when the API cannot say; callers explain that to the user."""
    key = f"conversions:formats:{api_config().api_url}"
    formats = cache.get(key)
    if formats is None:
        formats = [f for f in get_client().list_formats() if f.get("operation", "convert") == "convert"]
        cache.set(key, formats, FORMATS_CACHE_SECONDS)
    return formats


def output_format_choices() -> list[tuple[str, str]]:
    """Every output format the API offers, for the picker (sorted, each once)."""
    try:
        formats = conversion_formats()
    except ApiError as error:
        logger.warning("could not list formats: %r", error)
        return []
    return [(f, f.upper()) for f in sorted({str(item["output_format"]) for item in formats})]
