"""Reading and writing a run's files: a fault never leaves a half-written line behind, and a bad line never
stops a reader.

Every file a run appends to (results, trace) goes through ``LineWriter``; every file it replaces whole (the
manifest, a rewritten results file) through ``write_atomic``. A write that fails (a full disk, a file system
gone read-only, a quota) raises ``WriteFailed``: one sentence naming the file, the cause and what to do, with the
file as it was before the write, so the next run never reads a torn line as data. Every reader of a JSON-lines
file goes through ``json_lines``, which reads what parses and says why each other line does not.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ADVICE = {
    errno.ENOSPC: "no space is left on its device; free some space, then run the same command again",
    errno.EDQUOT: "the disk quota is used up; free some space, then run the same command again",
    errno.EFBIG: "it has reached the largest file size allowed here; give another --out",
    errno.EROFS: "its file system is read-only; give an --out on a file system you can write to",
    errno.EACCES: "permission denied; give an --out you can write to",
    errno.EPERM: "the operation is not permitted there; give an --out you can write to",
    errno.ENOTDIR: "a part of its path is a file, not a folder; give another --out",
    errno.ENAMETOOLONG: "its name is too long for the file system; give a shorter --out",
}
# the place given cannot take files, from the start: a bad --out rather than a fault while running
UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ENAMETOOLONG}


class WriteFailed(OSError):
    """A run's file could not be written; ``str()`` says which, why and what to do. The file holds what it held
    before the failed write."""

    def __init__(self, path: str | Path, error: OSError):
        advice = _ADVICE.get(error.errno, f"{error.strerror or error}; check the device, then run the command again")
        super().__init__(error.errno, f"cannot write {path}: {advice}")
        self.path = Path(path)

    def __str__(self) -> str:
        return self.strerror

    @property
    def bad_input(self) -> bool:
        """Whether the place was wrong from the start (read-only, no permission), rather than a fault while running."""
        return self.errno in UNWRITABLE


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """An ``OSError`` raised inside becomes ``WriteFailed`` naming ``path``."""
    try:
        yield
    except WriteFailed:
        raise
    except OSError as error:
        raise WriteFailed(path, error) from error


class LineWriter:
    """Appends lines to a file, each in whole or not at all.

    The file is opened unbuffered, so nothing waits in a buffer to be written later; each line is one
    ``os.write`` (repeated on a short write). If a write fails part-way, the file is cut back to its length before
    the line, then ``WriteFailed`` is raised. A file whose last line lacks its newline (a line torn by a kill, a hand
    edit) gets one first, so a new line never runs into it."""

    def __init__(self, path: str | Path, *, durable: bool = False):
        self.path = Path(path)
        self.durable = durable  # fsync each line: it survives a crash of the machine, not only of the process
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if _ends_without_newline(self.path):
                self.write("\n")
        except WriteFailed:
            self.close()
            raise

    def write(self, line: str) -> None:
        """Append ``line`` (which ends in a newline) whole, or raise ``WriteFailed`` with the file unchanged."""
        data = line.encode("utf-8")
        start = os.fstat(self._fd).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            if self.durable:
                os.fsync(self._fd)
        except OSError as error:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass  # the file cannot be cut back either (a read-only remount): the readers set its torn line aside
            raise WriteFailed(self.path, error) from error

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LineWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_without_newline(path: Path) -> bool:
    with path.open("rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` by ``text`` at once: readers see the old file or the new, never a mix. On a failure the old
    file stays and no temporary file is left behind."""
    path = Path(path)
    fresh = path.with_name(path.name + ".tmp")
    try:
        with writing(path):
            with fresh.open("w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(fresh, path)
    except WriteFailed:
        with contextlib.suppress(OSError):  # where nothing can be written, nothing can be removed either
            fresh.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Line:
    """One non-blank line of a JSON-lines file: its number (from 1), its text, and its value, or why it has none."""

    number: int
    text: str
    value: Any = None
    why: str | None = None  # None when the line parsed


def json_lines(path: str | Path) -> Iterator[Line]:
    """Each non-blank line of ``path``, parsed. Read as bytes, so a line that is not UTF-8 loses only itself;
    a line nested too deeply for the parser, or torn (the last line without its newline that does not parse), is
    said to be so. Linear in the file's size; never raises for what a line holds."""
    with Path(path).open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            torn = not raw.endswith(b"\n")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Line(number, raw.decode("utf-8", errors="replace"), why="not UTF-8 text")
                continue
            try:
                yield Line(number, text, json.loads(text))
            except json.JSONDecodeError as e:
                why = "half-written last line (the run was stopped mid-write)" if torn else f"not JSON ({e.msg})"
                yield Line(number, text, why=why)
            except ValueError as e:  # a number JSON allows but Python will not build (an integer of 5,000 digits)
                yield Line(number, text, why=f"not readable ({e})")
            except RecursionError:
                yield Line(number, text, why="nested too deeply to read")
