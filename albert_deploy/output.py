"""Writing a set of files all at once: build them in a sibling directory, then swap directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import RenderError


def replace_directory(
    out_dir: Path, files: dict[str, str], secret_files: tuple[str, ...], ours: tuple[str, ...]
) -> None:
    """Make ``out_dir`` hold exactly ``files``. Nothing changes when any step fails."""
    out_dir = out_dir.resolve()
    if out_dir.exists():
        if not out_dir.is_dir():
            raise RenderError(f"{out_dir}: exists and is not a directory; choose another output with -o")
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ours)
        if foreign:
            raise RenderError(
                f"{out_dir}: holds files albert-deploy did not write ({', '.join(foreign[:5])}); "
                "choose an empty directory or a previous render's with -o"
            )
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
        _swap(staging, out_dir)
    except OSError as err:
        raise RenderError(f"{out_dir}: cannot write it ({err.strerror}); nothing was changed") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(path: Path, text: str, mode: int) -> None:
    # Create with the final mode so a secret is never readable by others, even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _swap(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.rename(out_dir, old)
    try:
        os.rename(staging, out_dir)
    except OSError:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)
