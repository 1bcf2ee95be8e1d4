"""Receiving an upload: a size limit counted while the bytes arrive, the type sniffed from them.

The file comes as the raw request body, so nothing is buffered or spooled before the count
starts: the transfer stops at the first byte past the limit (a declared Content-Length over it
is refused before reading anything). The client's file name is kept only as a label (view
recognition, download names); it must be a plain name, never a path.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

from cardioseg.app.sniff import HEAD_BYTES, Kind, sniff
from cardioseg.errors import CardiosegError, DataError

MAX_NAME = 255
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]")


class UploadTooLarge(CardiosegError):
    """The upload exceeds ``serve.max_upload_mb``."""


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
    """Stream the body into ``folder``; the file ends with the suffix of its sniffed kind."""
    limit = int(max_mb * 2**20)
    part = folder / "upload.part"
    size, head, kind = 0, b"", None
    with open(part, "wb") as out:
        async for chunk in chunks:
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
