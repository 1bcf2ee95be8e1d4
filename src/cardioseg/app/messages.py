"""Error texts as the client sees them: never a path on the server.

A ``DataError`` keeps the text of the library error behind it, and libraries quote the file they
failed on: PIL ("cannot identify image file '/tmp/cardioseg-serve-…/upload.png'"), nibabel
("Expected 4096 bytes, got 48 bytes from /tmp/…"), pydicom, gzip. The scratch folder's layout
and the server's user and folders are none of the client's business, so a path under the scratch
folder becomes "the upload" and any other absolute path "a server file".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

UPLOAD = "the upload"
SERVER_FILE = "a server file"
_PATH_TAIL = r"[^\s'\"<>|,;()]*"
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[\w.@+~-]+/)*[\w.@+~-]+/?")


def without_paths(text: str, scratch: Path) -> str:
    """``text`` with every path under ``scratch`` and every other absolute path replaced by a phrase."""
    for root in {str(scratch), os.path.realpath(scratch)}:
        text = re.sub(re.escape(root) + _PATH_TAIL, UPLOAD, text)
    return _ABSOLUTE_PATH.sub(SERVER_FILE, text)
