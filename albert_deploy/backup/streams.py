"""Tar streams, read and written chunk by chunk (a dump or a snapshot can be larger than memory)."""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

CHUNK = 1 << 20


class ChunkReader:
    """A read-only file object over an iterator of byte chunks (what ``get_archive`` returns)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks, self.buffer = iter(chunks), b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def only_file(chunks: Iterable[bytes], meta: dict[str, Any]) -> Iterator[bytes]:
    """The content of the one regular file in a tar stream (``docker cp`` of a file); its size,
    owner and mode go into ``meta``."""
    with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            if not member.isfile():
                continue
            meta.update(size=member.size, uid=member.uid, gid=member.gid, mode=member.mode)
            stream = tar.extractfile(member)
            assert stream is not None
            while chunk := stream.read(CHUNK):
                yield chunk
            return
    raise ValueError("the copy from the container holds no file")


def regular(name: str, size: int, owner: int | tuple[int, int] = 0, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, int(time.time())
    info.uid, info.gid = owner if isinstance(owner, tuple) else (owner, owner)
    return info


def directory(name: str, owner: int = 0) -> tarfile.TarInfo:
    info = regular(name, 0, owner, 0o755)
    info.type = tarfile.DIRTYPE
    return info


def tar_stream(entries: list[tarfile.TarInfo], contents: list[Iterable[bytes] | None]) -> Iterator[bytes]:
    """A tar archive of ``entries`` (each regular file's content from ``contents``), as chunks."""
    for info, content in zip(entries, contents, strict=True):
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        if content is None:
            continue
        written = 0
        for chunk in content:
            written += len(chunk)
            yield chunk
        if written != info.size:
            raise ValueError(f"{info.name}: {written} bytes, not {info.size}")
        if written % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - written % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
