"""--incremental and streaming: the rows of every trial kept beside the output, to be reused.

The store is a folder (`<output>.incremental/`, with our marker) holding a manifest and
Arrow shards. The manifest says, per trial (keyed by a hash of its path): the stamp of its
files (path, size and mtime of each), its result (hashed), where its rows are (shard,
start, count per split) and its own part of the report. An export with a store sends each
task's records along with its trials; a worker stamps each trial, reads only those that
changed and copies the stored rows of the others into place (tasks.export_task), so that
every task's shards hold the rows a full export gives, in the same order; the parent keeps
the shards and the records (assemble) and writes the new manifest (commit). Trials that
vanished are left out. The stored rows are those before --dedupe and the draws, which are
made on the whole job as always.

As a job runs, the exporter plugin writes into its store (TrialStream): each finished
trial's rows go to a stream segment (an Arrow IPC file, a batch per trial: trials end in
any order, so a job-end task reads its trials' batches by number from many segments), and
its record to a journal, which the job-end export reads like the manifest.
"""
from __future__ import annotations

import gc
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa

from harbor_hooks.errors import UsageError
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline.shards import SHARDS, WORK_PREFIX, ShardWriter, TaskResult, shard_schema
from harbor_hooks.pipeline.tasks import Known, finish_records, read_changed, stamp_trials
from harbor_hooks.pipeline.transform import TaskTrials
from harbor_hooks.report import ExportReport, printable
from harbor_hooks.version import __version__

STORE_FORMAT = 1
MANIFEST = "manifest.json"
JOURNAL = "journal.jsonl"
MARKER = ".harbor-hooks-store"  # a folder holding it is a store (and may be rewritten)
STREAM = "stream"  # the segments written as a job runs
NOT_ROWS = ("workers", "engine", "ray_address")  # options that change how, not what
CHECKED = ("stamp", "result", "own", "renamed", "rows")  # what a worker is given of a record


def store_of(output: str | os.PathLike) -> str:
    """Where --incremental keeps its store: beside the output."""
    return os.fspath(output).rstrip("/" + os.sep) + ".incremental"


def _file_stamp(path: str) -> list[Any]:
    """Size and mtime of a file, or of every file in a folder (a tokenizer), links followed
    (unlike a trial's stamp: a Hub cache's snapshot folder holds links to its blobs)."""
    found = []
    for folder, _, names in sorted(os.walk(path)) if os.path.isdir(path) else [("", [], [path])]:
        for name in sorted(names):
            try:
                st = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            found.append([name, st.st_size, st.st_mtime_ns])
    return found


def fingerprint(opts: ExportOptions, split_by: str | None, roots: list[str]) -> dict[str, Any]:
    """What the stored rows and reports depend on besides the trials: this version, the
    options, the roots as given (rows name their trial relative to its root, the report by
    the root's spelling) and the files options name."""
    options = opts.model_dump(mode="json", exclude=set(NOT_ROWS))
    files = {name: _file_stamp(os.fspath(path)) for name in ("tokenizer", "decontaminate")
             if (path := getattr(opts, name)) is not None}
    return {"harbor_hooks": __version__, "store": STORE_FORMAT, "options": options,
            "split_by": split_by, "roots": [_path_hash(os.fspath(r)) for r in roots], "files": files}


def _difference(old: Any, new: dict[str, Any]) -> str:
    """One line: why a manifest made with old cannot serve an export made with new."""
    if not isinstance(old, dict):
        return "its header is not a fingerprint"
    if old.get("harbor_hooks") != new["harbor_hooks"]:
        return f"it was written by harbor-hooks {old.get('harbor_hooks')} (this is {new['harbor_hooks']})"
    if old.get("store") != new["store"]:
        return f"its format is {old.get('store')!r} (this version reads {new['store']})"
    for key in ("options", "split_by", "roots", "files"):
        if old.get(key) == new[key]:
            continue
        if key == "options" and isinstance(old.get(key), dict):
            name = next(k for k in sorted({*old[key], *new[key]}) if old[key].get(k) != new[key].get(k))
            return f"the option {name} differs ({old[key].get(name)!r} then, {new[key].get(name)!r} now)"
        return {"split_by": "the splits differ", "roots": "it exported other folders (or spelled them otherwise)",
                "files": "the tokenizer or --decontaminate file changed"}[key]
    return ""


class TrialStore:
    """The store of one export, in the parent: the records read, and the new ones."""

    def __init__(self, path: str, opts: ExportOptions, split_by: str | None, roots: list[str],
                 private: bool = False):
        self.path = path
        self.fingerprint = fingerprint(opts, split_by, roots)
        self.records: dict[str, dict[str, Any]] = {}  # trial dir -> its stored record
        self.shards: dict[str, list[int]] = {}  # stored shard -> [rows, bytes, mtime in ns]
        self.new: dict[str, dict[str, Any]] = {}
        self.new_shards: dict[str, list[int]] = {}
        self.reason: str | None = None  # why no trial could be reused
        self.run = uuid.uuid4().hex[:8]  # names this export's new shards
        self.private = private
        self._in_flight: dict[int, list[str]] = {}  # the trials of each task not done yet
        self.reused = self.read = self.damaged = 0
        open_store(path, SHARDS)
        self._load()

    # -- reading ---------------------------------------------------------------------
    def _load(self) -> None:
        gc.disable()  # many small objects: no collection walks them while they are made
        try:
            self._read()
        finally:
            gc.enable()

    def _read(self) -> None:
        manifest = os.path.join(self.path, MANIFEST)
        if os.path.exists(manifest):
            try:
                with open(manifest, "rb") as fh:
                    data = orjson.loads(fh.read())
                header, records, shards = data["fingerprint"], data["trials"], data["shards"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.reason = f"its manifest cannot be read ({type(exc).__name__})"
            else:
                self.reason = _difference(header, self.fingerprint) or None
                if self.reason is None:
                    self.records, self.shards = records, shards
        else:
            self.reason = "it has no manifest yet"
        self._load_journal()
        present = {name for name, stat in self.shards.items() if _stat(os.path.join(self.path, name)) == stat[1:]}
        kept = {trial: r for trial, r in self.records.items() if self._rows_present(r, present)}
        self.damaged = len(self.records) - len(kept)  # their rows lost, cut or changed: read again
        self.records = kept

    def _load_journal(self) -> None:
        """The records streamed as a job ran, over the manifest's (later ones win)."""
        try:
            with open(os.path.join(self.path, JOURNAL), "rb") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return
        try:
            if not lines or orjson.loads(lines[0]) != self.fingerprint:
                if self.reason == "it has no manifest yet":
                    self.reason = "its journal was streamed with other options or folders"
                return  # not ours to use
        except ValueError:
            return
        for line in lines[1:]:
            try:
                record = orjson.loads(line)
                if "shard" in record:  # a segment closed: its rows, size and mtime
                    self.shards[record["shard"]] = [record["rows"], *record["stat"]]
                else:
                    self.records[record.pop("trial")] = record
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut by a crash: that trial is read again
        if len(lines) > 1:
            self.reason = None

    def _rows_present(self, record: Any, present: set[str]) -> bool:
        """Whether a record's rows can be read back (a shard lost or cut short: read again)."""
        try:
            for name, start, count, *_ in record.get("rows", {}).values():
                if name not in present or start < 0 or start + count > self.shards[name][0]:
                    return False
            return isinstance(record["report"], dict) and isinstance(record["stamp"], str)
        except (TypeError, ValueError, AttributeError, KeyError):
            return False

    def known(self, trials: list[str]) -> Known:
        """What a worker needs to know each trial again (tasks.unchanged) and to copy its rows."""
        found = [self.records.get(_key(t)) for t in trials]
        records = [r and {k: r[k] for k in CHECKED if k in r} for r in found]
        names = {place[0] for r in found if r for place in r["rows"].values()}
        return Known(self.path, records, {name: self.shards[name][0] for name in names})

    def tasks(self, batches: Iterator[tuple[int, tuple[str, list[str]]]]
              ) -> Iterator[tuple[int, tuple[str, list[str], list[dict[str, Any] | None]]]]:
        """The export's tasks, each with what is known of its trials (kept until it is done)."""
        for i, (root, trials) in batches:
            self._in_flight[i] = trials
            yield i, (root, trials, self.known(trials))

    def assemble(self, result: TaskResult, workdir: str) -> TaskResult:
        """A task's shards kept in the store (a stored shard the task reused whole is kept as
        it is), and each trial's record kept for the new manifest. private: the shards given
        on are links in workdir (--dedupe and the draws rewrite them)."""
        records = result.trials or []
        trials = [_key(t) for t in self._in_flight.pop(result.index)]
        names, paths = {}, {}
        shards_dir = os.path.join(self.path, SHARDS)
        for split, path in result.paths.items():
            if os.path.dirname(path) == shards_dir:  # reused whole
                names[split] = f"{SHARDS}/{os.path.basename(path)}"
            else:
                names[split] = f"{SHARDS}/{self.run}-{os.path.basename(path)}"
                os.replace(path, os.path.join(self.path, names[split]))
            paths[split] = os.path.join(self.path, names[split])
            self.new_shards[names[split]] = [result.rows[split], *_stat(paths[split])]
            if self.private:
                paths[split] = os.path.join(workdir, os.path.basename(names[split]))
                _link(os.path.join(self.path, names[split]), paths[split])
        for trial, record in zip(trials, records):
            reused = bool(record.get("reused"))
            stored = self.records[trial] if reused else record
            entry = self.new[trial] = {k: stored[k] for k in (*CHECKED, "report") if k in stored}
            entry["rows"] = {split: [names[split], *place] for split, place in record["rows"].items()}
            if reused and stored.get("report"):  # its part of the report, as when it was read
                result.report.add_state(stored["report"])
            self.reused += reused
            self.read += not reused
        return TaskResult(result.index, paths, result.rows, result.report, records)

    def commit(self, workdir: str) -> None:
        """The new manifest in place (atomically), then what it does not name removed: the
        shards of no trial, the journal, the stream segments, and the work folders of earlier
        exports (the API keeps its own, its Dataset maps it)."""
        manifest = os.path.join(self.path, MANIFEST)
        with open(manifest + ".tmp", "wb") as fh:
            fh.write(orjson.dumps({"fingerprint": self.fingerprint, "shards": self.new_shards, "trials": self.new}))
        os.replace(manifest + ".tmp", manifest)
        for name in os.listdir(os.path.join(self.path, SHARDS)):
            if name.endswith(".arrow") and f"{SHARDS}/{name}" not in self.new_shards:
                os.unlink(os.path.join(self.path, SHARDS, name))
        shutil.rmtree(os.path.join(self.path, STREAM), ignore_errors=True)
        if os.path.exists(os.path.join(self.path, JOURNAL)):
            os.unlink(os.path.join(self.path, JOURNAL))
        for name in os.listdir(self.path):
            if name.startswith(WORK_PREFIX) and os.path.join(self.path, name) != workdir:
                shutil.rmtree(os.path.join(self.path, name), ignore_errors=True)

    def summary(self) -> str:
        removed = len(set(self.records) - set(self.new))
        line = (f"--incremental: {self.read} trial{'s' * (self.read != 1)} read, {self.reused} reused"
                + (f", {removed} gone from the job (their rows removed)" if removed else "")
                + (f"; {self.damaged} read again as their stored rows were lost or changed" if self.damaged else ""))
        if self.reason is not None:
            line += f"; every trial read, as the store at {printable(self.path)} could not serve: {self.reason}"
        return line


def _key(trial: str) -> str:
    """A trial's key in the store, however its root was given: its absolute path, hashed."""
    return _path_hash(trial if trial.startswith("/") and "/." not in trial else os.path.abspath(trial))


def _path_hash(path: str) -> str:
    """A path as the store keeps it: hashed (a path may hold a secret, or bytes that are not text)."""
    return hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def _stat(path: str) -> list[int] | None:
    """What a stored shard is known by: its size and mtime (a shard rewritten is not ours)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links: a copy
        shutil.copyfile(source, target)


def check_store(path: str) -> None:
    """A store path that exists must be a store (a folder holding our marker, or an empty
    one): never a file or a folder of the user's, and its folders no links. UsageError."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        raise UsageError(f"{printable(path)}: --incremental keeps its store there, and it is not a folder")
    names = set(os.listdir(path))
    if names and MARKER not in names and not _ours(os.path.join(path, MANIFEST)):
        raise UsageError(f"{printable(path)}: --incremental keeps its store there, and it holds files "
                         "that are not a store's: move them or give another --output")
    if any(os.path.islink(os.path.join(path, name)) for name in (SHARDS, STREAM, MANIFEST, JOURNAL)):
        raise UsageError(f"{printable(path)}: a store's folders and files are not links")


def _ours(manifest: str) -> bool:
    """A manifest an earlier build wrote, before stores had their marker."""
    try:
        with open(manifest, "rb") as fh:
            return "harbor_hooks" in orjson.loads(fh.read())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def open_store(path: str, folder: str) -> None:
    """A store's folder made (after check_store), with the marker that makes it ours."""
    check_store(path)
    os.makedirs(os.path.join(path, folder), exist_ok=True)
    marker = os.path.join(path, MARKER)
    if not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write("harbor-hooks --incremental store: rows of trials, reused by the next export\n")


SEGMENT_TRIALS = 1000  # trials per stream segment


class TrialStream:
    """The store of a running job, written by the exporter plugin as each trial finishes:
    its rows appended to a stream segment, its record to the journal (after its rows are
    flushed). The job-end export reads the journal as it reads a manifest."""

    def __init__(self, path: str, opts: ExportOptions, split_by: str | None, root: str):
        open_store(path, STREAM)
        self.path, self.root, self.opts = path, os.fspath(root), opts
        self.task = TaskTrials(opts, ExportReport(), split_by)
        header = orjson.dumps(fingerprint(opts, split_by, [self.root]))
        journal = os.path.join(path, JOURNAL)
        try:
            with open(journal, "rb") as fh:
                same = fh.readline().rstrip(b"\n") == header
        except OSError:
            same = False
        self.journal = open(journal, "ab" if same else "wb")
        if not same:
            self._append(header)
        self.writer = None
        self.trials = 0

    def _append(self, line: bytes) -> None:
        self.journal.write(line + b"\n")
        self.journal.flush()

    def add(self, trial_dir: str) -> None:
        """Export one finished trial into the store."""
        if self.writer is None:  # a report of its own: what the job-end export reports is its own
            self.writer = ShardWriter(os.path.join(self.path, STREAM), f"s{uuid.uuid4().hex[:12]}",
                                      shard_schema(self.opts), ExportReport(), random_access=True)
        i = self.trials
        records = stamp_trials(self.task, [trial_dir], [None])
        traced = read_changed(self.task, [trial_dir], self.root, records, [None], self.writer, first=i)
        self.writer.flush()
        finish_records(self.task, records, self.writer, traced, i)
        self.trials += 1
        record = records[0]
        # each trial's rows are one batch of a segment: a job-end task reads it by its number
        record["rows"] = {split: [f"{STREAM}/{os.path.basename(self.writer.path_of(split))}", start, count,
                                  self.writer.batches[split] - 1]
                          for split, (start, count) in record.get("rows", {}).items()}
        self._append(orjson.dumps({"trial": _key(trial_dir), **record}))
        if self.trials % SEGMENT_TRIALS == 0:
            self._close_segment()

    def _close_segment(self) -> None:
        """The segment closed, and named in the journal with its rows, size and mtime."""
        if self.writer is None:
            return
        for split, path in self.writer.close().items():
            self._append(orjson.dumps({"shard": f"{STREAM}/{os.path.basename(path)}",
                                       "rows": self.writer.rows[split], "stat": _stat(path)}))
        self.writer = None

    def close(self) -> None:
        self._close_segment()
        self.journal.close()
