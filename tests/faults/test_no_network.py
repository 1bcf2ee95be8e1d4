"""No cardioseg command contacts the network unasked: not predict, serve or train, nor their imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Every socket connection attempt is recorded and refused; the modules behind train, predict and serve
# are imported as their commands import them.
PROBE = textwrap.dedent("""
    import os, socket, sys
    os.environ.pop("NO_ALBUMENTATIONS_UPDATE", None)
    attempts = []
    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network refused by the test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    import cardioseg.cli
    import cardioseg.training.run, cardioseg.data.augment, cardioseg.app.server, cardioseg.inference.predict
    import albumentations
    print("ATTEMPTS", attempts)
""")


@pytest.mark.timeout(120)
def test_importing_every_command_makes_no_connection() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=110, check=True)
    assert "ATTEMPTS []" in done.stdout, done.stdout + done.stderr


def test_predict_and_serve_do_not_import_training_libraries() -> None:
    probe = "import sys, cardioseg.app.server, cardioseg.inference.predict; print(sorted(m for m in ('lightning', 'albumentations') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=110, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
