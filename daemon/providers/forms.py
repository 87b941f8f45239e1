"""Multipart upload bodies, streamed from the local file and built anew for every attempt.

A request body cannot be replayed, so the HTTP layer takes a factory (``BodyFactory``) that opens the
file (through ``UploadSource.open``, which checks it is still the planned file) and builds the form
around the open handle, once per attempt.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import aiohttp

from daemon.local.source import UploadSource
from daemon.providers.http import BodyFactory

TEXT_FIELD = {"Content-Type": "text/plain; charset=utf-8"}


def content_type(name: str) -> str:
    """The MIME type a file name suggests, else ``application/octet-stream``."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def add_fields(
    writer: aiohttp.MultipartWriter, fields: Mapping[str, str], headers: Mapping[str, str] = TEXT_FIELD
) -> None:
    """One ``form-data`` part per field, in order."""
    for key, value in fields.items():
        part = writer.append(value, dict(headers))
        part.set_content_disposition("form-data", name=key)


def add_file(writer: aiohttp.MultipartWriter, field: str, handle: IO[bytes], filename: str, ctype: str) -> None:
    """The file part, streamed from ``handle`` (its size known, so Content-Length is sent)."""
    part = writer.append(handle, {"Content-Type": ctype})
    part.set_content_disposition("form-data", name=field, filename=filename)


def form(fields: Mapping[str, str]) -> aiohttp.MultipartWriter:
    """A ``multipart/form-data`` body of text fields."""
    writer = aiohttp.MultipartWriter("form-data")
    add_fields(writer, fields)
    return writer


def built_each_attempt(build: Callable[[], aiohttp.MultipartWriter]) -> BodyFactory:
    """A body factory for a form without a file."""

    @contextmanager
    def body() -> Iterator[aiohttp.MultipartWriter]:
        yield build()

    return body


def streamed_from(source: UploadSource, build: Callable[[IO[bytes]], Any]) -> BodyFactory:
    """A body factory that opens ``source`` for each attempt and builds the body around the handle."""

    @contextmanager
    def body() -> Iterator[Any]:
        with source.open() as handle:
            yield build(handle)

    return body
