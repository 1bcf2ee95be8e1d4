"""Receiving an upload: a size limit counted while the bytes arrive, the type sniffed from them.

The file comes as the raw request body, so nothing is buffered or spooled before the count
starts: the transfer stops at the first byte past the limit (a declared Content-Length over it
is refused before reading anything). A client that stops sending mid-upload, or trickles bytes
to hold a connection and a half-written file, is cut off by a read timeout. The client's file
name is kept only as a label (view recognition, download names); it must be a plain name, never
a path.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from cardioseg.data.sniff import HEAD_BYTES, Kind, sniff
from cardioseg.errors import CardiosegError, DataError

MAX_NAME = 255
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]")
IDLE_SECONDS = 30.0
"""Longest wait for the next part of an upload: a client silent this long has stalled."""
UPLOAD_SECONDS = 600.0
"""Longest a whole upload may take (64 MB in 10 minutes is under 1 Mbit/s)."""


class UploadTooLarge(DataError):
    """The upload, as sent or once decoded, exceeds ``serve.max_upload_mb``."""


class UploadStalled(CardiosegError):
    """The client stopped sending, or sent too slowly, before the upload was complete."""


def _too_large(max_mb: float) -> UploadTooLarge:
    return UploadTooLarge(f"upload larger than the limit of {max_mb:g} MB (serve.max_upload_mb)")


def plain_name(name: str | None) -> str:
    """The client's file name as a label; a path, a parent reference or control characters are refused."""
    name = (name or "upload").strip()
    if not name or len(name) > MAX_NAME or _UNSAFE_NAME.search(name) or name in (".", ".."):
        raise DataError("the file name must be a plain name, not a path")
    return name


def check_declared(length: str | None, max_mb: float) -> None:
    """Refuse at once a body whose declared Content-Length is over the limit."""
    if length is not None and length.isdigit() and int(length) > max_mb * 2**20:
        raise _too_large(max_mb)


async def receive(chunks: AsyncIterator[bytes], folder: Path, max_mb: float) -> tuple[Path, Kind]:
    """Stream the body into ``folder``; the file ends with the suffix of its sniffed kind.

    UploadStalled when the client goes quiet for ``IDLE_SECONDS`` or takes over ``UPLOAD_SECONDS``
    (the caller removes the partial file with the folder).
    """
    try:
        with anyio.fail_after(UPLOAD_SECONDS):
            return await _receive(chunks, folder, max_mb)
    except TimeoutError:
        raise UploadStalled(f"the upload was not complete within {UPLOAD_SECONDS:g} s") from None


async def _next(chunks: AsyncIterator[bytes]) -> bytes | None:
    """The next chunk, None at the end of the body; UploadStalled after ``IDLE_SECONDS`` of silence."""
    try:
        with anyio.fail_after(IDLE_SECONDS):
            return await anext(chunks, None)
    except TimeoutError:
        raise UploadStalled(f"the upload stalled: no data for {IDLE_SECONDS:g} s") from None


async def _receive(chunks: AsyncIterator[bytes], folder: Path, max_mb: float) -> tuple[Path, Kind]:
    limit = int(max_mb * 2**20)
    part = folder / "upload.part"
    size, head, kind = 0, b"", None
    with open(part, "wb") as out:
        while (chunk := await _next(chunks)) is not None:
            size += len(chunk)
            if size > limit:
                raise _too_large(max_mb)
            if kind is None:
                head += chunk
                if len(head) >= HEAD_BYTES:
                    kind = sniff(head)
            out.write(chunk)
    if size == 0:
        raise DataError("the upload is empty")
    kind = kind or sniff(head)
    return part.rename(folder / f"upload{kind.value}"), kind
