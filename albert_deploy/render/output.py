"""Writing a set of files all at once: build them in a sibling directory, then swap directories.

The previous output is kept as a dated backup beside it (``deploy.backups/20261125T143000Z``), so an
operator can go back to the last rendering that worked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from albert_deploy.errors import RenderError

KEEP_BACKUPS = 10


def backups_dir(out_dir: Path) -> Path:
    return out_dir.resolve().with_name(out_dir.resolve().name + ".backups")


def replace_directory(
    out_dir: Path, files: dict[str, str], secret_files: tuple[str, ...], ours: tuple[str, ...]
) -> str:
    """Make ``out_dir`` hold exactly ``files``. Nothing changes when any step fails.

    Returns "created", "updated" (the old output moved to the backups) or "unchanged"."""
    out_dir = out_dir.resolve()
    if out_dir.exists():
        check_ours(out_dir, ours)
        if _same(out_dir, files):
            return "unchanged"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as err:
        raise RenderError(
            f"{out_dir}: cannot create it ({err.strerror}); choose a writable directory with -o"
        ) from None
    try:
        os.chmod(staging, 0o755)  # containers read config.yml through this directory
        for name, text in files.items():
            _write(staging / name, text, 0o600 if name in secret_files else 0o644)
        existed = out_dir.exists()
        _swap(staging, out_dir)
    except OSError as err:
        raise RenderError(f"{out_dir}: cannot write it ({err.strerror}); nothing was changed") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return "updated" if existed else "created"


def check_ours(out_dir: Path, ours: tuple[str, ...]) -> None:
    if not out_dir.is_dir():
        raise RenderError(f"{out_dir}: exists and is not a directory; choose another output with -o")
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ours)
    if foreign:
        raise RenderError(
            f"{out_dir}: holds files albert-deploy did not write ({', '.join(foreign[:5])}); "
            "choose an empty directory or a previous render's with -o"
        )


def _same(out_dir: Path, files: dict[str, str]) -> bool:
    present = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if not p.is_dir()}
    if present != set(files):
        return False
    return all((out_dir / name).read_text(encoding="utf-8") == text for name, text in files.items())


def _write(path: Path, text: str, mode: int) -> None:
    # Create with the final mode so a secret is never readable by others, even for a moment.
    path.parent.mkdir(mode=0o755, exist_ok=True)  # "app/deployments.yaml": one level of subdirectory
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _swap(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    backups = backups_dir(out_dir)
    backups.mkdir(mode=0o700, exist_ok=True)  # backups hold .env: private
    backup = _fresh(backups / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.rename(out_dir, backup)
    try:
        os.rename(staging, out_dir)
    except OSError:
        os.rename(backup, out_dir)
        raise
    _prune(backups)


def _fresh(path: Path) -> Path:
    # Two renders in the same second keep both backups.
    candidate, n = path, 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}-{n}"), n + 1
    return candidate


def _prune(backups: Path) -> None:
    for old in sorted(p for p in backups.iterdir() if p.is_dir())[:-KEEP_BACKUPS]:
        shutil.rmtree(old, ignore_errors=True)
