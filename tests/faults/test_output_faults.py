"""A full disk or a read-only output folder: a clear one-line error, and nothing already written is damaged."""

import hashlib
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "demo" / "camus_sample"
CLI = str(Path(sys.executable).parent / "cardioseg")


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _prepare(out: Path, size: int, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "prepare", "-s", str(SAMPLE), "-o", str(out), "--labels", "1:1", "--size", str(size), "-q"],
                          capture_output=True, text=True, timeout=300, **popen)


@pytest.fixture()
def prepared_once(tmp_path: Path) -> Path:
    base = tmp_path / "shared_out"
    base.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(base, 0o755)
    out = base / "prepared"
    assert _prepare(out, 32).returncode == 0
    return out


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, as a full disk gives ENOSPC, instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_disk_full_gives_clear_error_and_keeps_previous_output(prepared_once: Path) -> None:
    before = _digest(prepared_once)
    result = _prepare(prepared_once, 64, preexec_fn=_limit_file_size)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr and "could not write" in result.stderr and "prepared" in result.stderr
    assert _digest(prepared_once) == before  # the earlier dataset is untouched


@pytest.fixture()
def read_only(prepared_once: Path):
    """The output's parent folder, remounted read-only (a bind mount; needs root)."""
    folder = prepared_once.parent
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root) to make a read-only folder")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
        yield prepared_once
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_read_only_output_folder(read_only: Path) -> None:
    before = _digest(read_only)
    result = _prepare(read_only, 64)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "Read-only file system" in result.stderr and str(read_only.parent) in result.stderr
    assert _digest(read_only) == before


def test_model_files_get_the_users_umask(tmp_path: Path) -> None:
    """Every output, the model file included (safetensors writes its own 0600 file), is as readable as
    any file the user creates: 0644 under the usual umask 022."""
    probe = (
        "import os, stat, torch; os.umask(0o022)\n"
        "from cardioseg.config import ModelConfig\n"
        "from cardioseg.models.checkpoint import ModelBundle, save_bundle\n"
        "from cardioseg.models.factory import build_model\n"
        "from cardioseg.plan import ClassSpec, Plan\n"
        "cfg = ModelConfig(arch='plain_unet', encoder=None, classes=1, options={'base': 4, 'depth': 2})\n"
        "plan = Plan(layout='folders', label_map={1: 1}, classes=(ClassSpec(id=0, name='background'), ClassSpec(id=1, name='LV')))\n"
        f"path = save_bundle(ModelBundle(build_model(cfg), cfg, plan), {str(tmp_path / 'model.safetensors')!r})\n"
        "print(oct(stat.S_IMODE(path.stat().st_mode)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "0o644", done.stdout + done.stderr


def test_a_lock_names_its_holder_and_is_taken_over_when_the_holder_dies(tmp_path: Path) -> None:
    from cardioseg.errors import CardiosegError
    from cardioseg.fileio import folder_lock

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom cardioseg.fileio import folder_lock\n"
         f"with folder_lock({str(tmp_path)!r}, 'cardioseg train'):\n    print('held', flush=True)\n    time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CardiosegError) as refused, folder_lock(tmp_path, "cardioseg train"):
            pass
        assert f"in use by cardioseg train (PID {holder.pid} on " in str(refused.value)
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without any clean-up: its lock file stays behind
        holder.wait()
    with folder_lock(tmp_path, "cardioseg train"):  # the dead holder's lock is taken over
        assert f"PID {os.getpid()} " in (tmp_path / ".cardioseg.lock").read_text()
