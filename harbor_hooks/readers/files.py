"""Reading the files of a trial: each parsed once, every failure a TraceReadError."""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from typing import Any

import orjson

from harbor_hooks.errors import TraceReadError
from harbor_hooks.report import ExportReport


class _FinalSymlink(Exception):
    """read_bytes(follow=False) met a symlink as the last part of the path."""


def read_bytes(path: str, limit: int | None = None, follow: bool = True) -> bytes:
    """A file's bytes; larger than limit, it is not read at all (memory stays bounded).
    follow=False refuses a symlink as the last part of the path (_FinalSymlink)."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise TraceReadError(path, "file not found") from None
    except PermissionError:
        raise TraceReadError(path, "permission denied") from None
    except OSError as exc:
        if not follow and exc.errno == errno.ELOOP:
            raise _FinalSymlink(path) from None
        raise TraceReadError(path, f"cannot read ({exc.strerror or exc})") from None
    except ValueError:  # a NUL inside a name taken from the data
        raise TraceReadError(path, "not a valid file name") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise TraceReadError(path, "is a directory, expected a file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise TraceReadError(path, "is not a regular file")
        size = info.st_size
        if limit is not None and size > limit:
            raise TraceReadError(path, f"file of {size} bytes exceeds --max-file-bytes ({limit})")
        chunks, total, want = [], 0, size + 1  # one read for a file that does not change
        while chunk := os.read(fd, want):  # one that grows while read is read on, to the limit
            chunks.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:
                raise TraceReadError(path, f"file exceeds --max-file-bytes ({limit})")
            if total <= size:  # short of what was asked: the end, without one more read to see it
                break
            want = 1 << 16 if limit is None else min(1 << 16, limit + 1 - total)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as exc:
        raise TraceReadError(path, f"cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


TOKEN_IDS_KEY = b'_token_ids":'
NUMBER_LIST_BYTES = b"0123456789,-. \n\r\t"


def drop_token_ids(data: bytes) -> bytes:
    """Empty the `*_token_ids` arrays of ATIF metrics before parsing: they are most of a
    trajectory's bytes and no row uses them. Only a key can match: inside a JSON string a
    quote is escaped, so `_token_ids":` never appears there; and only arrays of numbers
    are emptied."""
    if TOKEN_IDS_KEY not in data:
        return data
    out, pos, key = [], 0, len(TOKEN_IDS_KEY)
    while True:
        at = data.find(TOKEN_IDS_KEY, pos)
        if at < 0:
            break
        start = data.find(b"[", at + key)
        end = data.find(b"]", start + 1) if start >= 0 else -1
        if end < 0 or data[at + key:start].strip() or data[start + 1:end].translate(None, NUMBER_LIST_BYTES):
            pos = at + key
            continue
        out.append(data[pos:start + 1])
        pos = end
    out.append(data[pos:])
    return b"".join(out)


def read_json(path: str, report: ExportReport | None = None, trajectory: bool = False,
              limit: int | None = None) -> Any:
    """Parse a JSON file. Invalid UTF-8 inside it is replaced by U+FFFD (and noted):
    one bad byte in a terminal dump must not cost the whole trial. What Python's json
    module writes and reads but strict JSON forbids (a raw control character such as NUL
    inside a string, NaN, Infinity, numbers beyond a double) is read as Python reads it,
    and noted."""
    return parse_json(read_bytes(path, limit), path, report, trajectory)


def parse_json(data: bytes, path: str, report: ExportReport | None = None,
               trajectory: bool = False) -> Any:
    """read_json on bytes already read from path."""
    if trajectory:
        data = drop_token_ids(data)
    if not data.strip():
        raise TraceReadError(path, "empty file")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).split(":")[0]
    if "depth" in reason:  # deeper than orjson's 1024 levels: no recursive parser gets it
        raise TraceReadError(path, f"invalid JSON ({reason})")
    text = data.decode("utf-8", errors="replace")
    bad_utf8 = text.encode("utf-8") != data
    try:
        parsed = orjson.loads(text)
        lenient = False
    except orjson.JSONDecodeError:
        # lone surrogates escaped as \udXXX, raw control characters, NaN: the stdlib accepts them
        try:
            parsed = _scrub_surrogates(json.loads(text, strict=False, parse_int=_parse_int))
        except (ValueError, RecursionError):
            raise TraceReadError(path, f"invalid JSON ({reason})") from None
        lenient = True
    if report is not None:
        if bad_utf8:
            report.notes.append(f"{path}: invalid UTF-8 replaced with U+FFFD")
        if lenient and not bad_utf8:
            report.notes.append(f"{path}: not strict JSON ({reason}), read as Python's json reads it")
    return parsed


def _parse_int(digits: str) -> int | float:
    """An integer as Python reads it; one of more digits than Python converts (4,300) is
    beyond any double: infinite, so a reward of it is unknown rather than the file lost."""
    return int(digits) if len(digits.lstrip("-")) <= 4000 else float("inf") * (-1 if digits[0] == "-" else 1)


def _scrub_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, list):
        return [_scrub_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_scrub_surrogates(k): _scrub_surrogates(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class ReadLimits:
    max_file_bytes: int = 64 << 20
    max_message_bytes: int = 16 << 20


class TrialFiles:
    """The files of one trial: confined to its directory, size-limited, parsed once each,
    every failure a TraceReadError naming the file."""

    def __init__(self, trial_dir: str, report: ExportReport, limits: ReadLimits = ReadLimits(),
                 token_ids: bool = False):
        self.trial_dir = trial_dir
        self.token_ids = token_ids  # keep ATIF's *_token_ids arrays (else emptied unparsed)
        self.report = report
        self.limits = limits
        self._root: str | None = None  # realpath of the trial, resolved on the first link
        self._norm_root = os.path.normpath(trial_dir)
        self._prefix = "" if self._norm_root == "." else self._norm_root.rstrip(os.sep) + os.sep
        # normalised directories found to stay in the trial: itself, and folders below it
        # found to be no links
        self._inside: set[str] = {self._norm_root}
        self._listings: dict[str, dict[str, os.DirEntry]] = {}

    def _outside_link(self, link: str, path: str) -> None:
        """Raise when the symlink `link` (path or a folder above it) resolves out of the trial."""
        if self._root is None:
            self._root = os.path.realpath(self.trial_dir)
        if not os.path.realpath(link).startswith(self._root + os.sep):
            raise TraceReadError(path, "symlink points outside the trial directory")

    def _confined(self, path: str) -> str:
        """path, unless it leads out of the trial: by `..` (an image path, a reference) or
        by a symlinked folder at any level below the trial directory (agent/ itself may be
        one). The file itself is checked as it is opened (_read)."""
        head, _, name = path.rpartition(os.sep)
        if head in self._inside and name not in ("", os.curdir, os.pardir):
            return path  # a plain name in a folder already found to stay in the trial
        norm = os.path.normpath(path)
        rel = norm[len(self._prefix):]
        if not norm.startswith(self._prefix) or os.path.isabs(rel) or rel == os.pardir \
                or rel.startswith(os.pardir + os.sep):
            raise TraceReadError(path, "path leads outside the trial directory")
        current = self._norm_root
        for part in rel.split(os.sep)[:-1]:
            current = os.path.join(current, part)
            if current not in self._inside:
                # only links can lead out of the trial: resolve just those
                if os.path.islink(current):
                    self._outside_link(current, path)
                self._inside.add(current)
        return path

    def _read(self, path: str) -> bytes:
        self._confined(path)
        try:  # one open that refuses a symlink: the common case costs no lstat
            return read_bytes(path, self.limits.max_file_bytes, follow=False)
        except _FinalSymlink:
            self._outside_link(path, path)
            return read_bytes(path, self.limits.max_file_bytes)

    def entries(self, directory: str) -> dict[str, os.DirEntry]:
        """A folder's entries by name, listed once: one scandir answers every "is there
        a ...?" the readers ask of it, with no stat per question. A missing folder has none."""
        listing = self._listings.get(directory)
        if listing is None:
            try:
                with os.scandir(directory) as it:
                    listing = {entry.name: entry for entry in it}
            except FileNotFoundError:
                listing = {}
            except OSError as exc:
                raise TraceReadError(directory, f"cannot list directory ({exc.strerror or exc})") from None
            self._listings[directory] = listing
        return listing

    def is_file(self, directory: str, name: str) -> bool:
        """os.path.isfile(directory/name) from the folder's listing: a regular file, or a
        link to one."""
        try:
            entry = self.entries(directory).get(name)
            return entry is not None and entry.is_file()
        except (OSError, TraceReadError):
            return False

    def json(self, path: str, trajectory: bool = False) -> Any:
        return parse_json(self._read(path), path, self.report, trajectory and not self.token_ids)

    def json_object(self, path: str, trajectory: bool = False) -> dict[str, Any]:
        data = self.json(path, trajectory)
        if not isinstance(data, dict):
            raise TraceReadError(path, f"expected a JSON object, found {type(data).__name__}")
        return data

    def bytes(self, path: str) -> bytes:
        return self._read(path)

    def text(self, path: str) -> str:
        data = self._read(path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.report.notes.append(f"{path}: invalid UTF-8 replaced with U+FFFD")
            return data.decode("utf-8", errors="replace")

    def message(self, text: str, path: str) -> str:
        """text, unless it exceeds --max-message-bytes (then the file/episode is skipped)."""
        limit = self.limits.max_message_bytes
        if len(text) > limit // 4 and len(text.encode("utf-8", "surrogatepass")) > limit:
            raise TraceReadError(path, f"a message of {len(text.encode('utf-8', 'surrogatepass'))} "
                                       f"bytes exceeds --max-message-bytes ({limit})")
        return text
