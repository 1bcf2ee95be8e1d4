"""A DICOMweb client for one endpoint, with credentials that never appear on a command line.

A hospital's endpoint usually wants an ``Authorization`` header. It comes from a file
(``--token-file``) or the environment variable ``CARDIOSEG_PACS_TOKEN``: either a bare token,
sent as ``Authorization: Bearer <token>``, or one whole header line ``Name: value`` (for
example ``Authorization: Basic <base64 user:password>``), sent as written. A command line ends
up in shell history and in every user's ``ps`` listing; a file readable by its owner only
does not. HTTP errors become ``CardiosegError``s that name the endpoint and the status.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient

from cardioseg.errors import CardiosegError, ConfigError

TOKEN_ENV = "CARDIOSEG_PACS_TOKEN"


def auth_headers(token_file: Path | None = None) -> dict[str, str]:
    """The header the token file (else ``CARDIOSEG_PACS_TOKEN``) holds; {} when neither is given."""
    if token_file is not None:
        try:
            text = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the token file: {exc}", token_file) from None
        if os.name == "posix" and Path(token_file).stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError("the token file is readable by other users: chmod 600 it", token_file)
    else:
        text = os.environ.get(TOKEN_ENV, "").strip()
    if not text:
        if token_file is not None:
            raise ConfigError("the token file is empty", token_file)
        return {}
    if "\n" in text:
        raise ConfigError("a token file holds one token or one 'Name: value' header line", token_file)
    name, colon, value = text.partition(":")
    if colon and name and " " not in name and value.strip():
        return {name.strip(): value.strip()}
    return {"Authorization": f"Bearer {text}"}


def connect(url: str, headers: dict[str, str], timeout_s: float = 60.0) -> DICOMwebClient:
    """A client of the DICOMweb root ``url`` (QIDO, WADO and STOW under it, as Orthanc's /dicom-web)."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"a DICOMweb URL starts with http:// or https://, not {url!r}")
    return DICOMwebClient(url, headers=headers, timeout=timeout_s)


def describe_http_error(exc: Exception, url: str, doing: str) -> CardiosegError:
    """A one-line error for a failed DICOMweb call: which endpoint, what it was doing, what came back."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        hint = {401: " (credentials missing or wrong: see --token-file)", 403: " (these credentials may not do this)",
                404: " (no such resource, or not a DICOMweb root)"}.get(status, "")
        return CardiosegError(f"{doing} at {url} failed: HTTP {status} {exc.response.reason}{hint}")
    return CardiosegError(f"{doing} at {url} failed: {type(exc).__name__}: {exc}")
