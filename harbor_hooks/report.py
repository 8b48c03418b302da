"""What an export did: rows written, and every trial, episode or file it skipped and why."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any



@dataclass(slots=True)  # a report may hold one per trial of a big job
class Skip:
    """One thing the export left out: a trial, an episode, or a file."""

    kind: str  # "trial" | "episode" | "file" | "row"
    path: str
    reason: str

    def line(self) -> str:
        return f"skipped {self.kind} {self.path}: {self.reason}"

    def __post_init__(self) -> None:  # path and reason as they can be printed and stored
        self.path, self.reason = printable(self.path), printable(self.reason)


MAX_NOTES = 10  # in the printed summary; the JSON report has them all
MAX_ALIKE = 3  # skips kept of one kind and reason for one file; the others only counted
# data quoted in a reason: quoted names, and numbers standing alone (not UTF-8's 8)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|(?<![\w.-])\d+(?![\w-])")
# control characters, and the ones that move or reorder text on a terminal (line and
# paragraph separators, bidirectional overrides and isolates, marks)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def fs_text(value: str) -> str:
    """A file name as valid text: bytes that are not UTF-8 (which Python carries as lone
    surrogates) become \\xNN escapes, so rows, JSON and consoles can hold it."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name holds: escaped as \\udXXX
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(value: str) -> str:
    """fs_text, with control characters escaped too: a name on one line can forge no other
    (a newline), and move no cursor (an escape sequence)."""
    value = fs_text(value)
    if _CONTROL.search(value) is None:
        return value
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), value)


def _reason_group(reason: str) -> str:
    return _QUOTED.sub("…", reason.split(" (step ")[0])


@dataclass
class ExportReport:
    """Counts and skips of one export; workers build partial reports that are merged."""

    trials_found: int = 0
    trials_exported: int = 0
    trials_filtered: int = 0
    rows: int = 0
    rows_by_split: dict[str, int] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)
    filtered: Counter = field(default_factory=Counter)  # option -> trials or rows it dropped
    redactions: Counter = field(default_factory=Counter)
    reshaped: Counter = field(default_factory=Counter)  # what a row's layout changed, counted
    nodes: Counter = field(default_factory=Counter)  # --engine ray: tasks run per node id
    images: int = 0
    audio: int = 0
    notes: list[str] = field(default_factory=list)
    # (kind, path, reason group) -> skips of it: past MAX_ALIKE only counted, so that a file
    # of a million bad steps costs a counter, not a million records
    alike: Counter = field(default_factory=Counter)

    def skip(self, kind: str, path: object, reason: str) -> None:
        key = (kind, str(path), _reason_group(reason))
        self.alike[key] += 1
        if self.alike[key] <= MAX_ALIKE:
            self.skips.append(Skip(kind, str(path), reason))

    def more_alike(self) -> dict[tuple[str, str, str], int]:
        """The skips counted but not kept, by (kind, path, reason group)."""
        return {key: n - MAX_ALIKE for key, n in self.alike.items() if n > MAX_ALIKE}

    def merge(self, other: "ExportReport") -> None:
        self.trials_exported += other.trials_exported
        self.trials_filtered += other.trials_filtered
        self.rows += other.rows
        self.skips.extend(other.skips)
        self.alike.update({key: n for key, n in other.alike.items() if n > MAX_ALIKE})
        self.filtered.update(other.filtered)
        self.redactions.update(other.redactions)
        self.reshaped.update(other.reshaped)
        self.nodes.update(other.nodes)
        self.images += other.images
        self.audio += other.audio
        self.notes.extend(other.notes)

    _COUNTERS = ("filtered", "redactions", "reshaped")
    _NUMBERS = ("trials_exported", "trials_filtered", "images", "audio")

    def state(self) -> dict[str, Any]:
        """What one trial added to a report, as JSON (--incremental keeps it per trial): only
        what is not empty. Row counts and trials found are the export's, not a trial's."""
        state: dict[str, Any] = {k: getattr(self, k) for k in self._NUMBERS if getattr(self, k)}
        state.update({k: dict(getattr(self, k)) for k in self._COUNTERS if getattr(self, k)})
        if self.skips:
            state["skips"] = [[s.kind, s.path, s.reason] for s in self.skips]
        alike = [[*key, n] for key, n in self.alike.items() if n > MAX_ALIKE]
        if alike:
            state["alike"] = alike
        if self.notes:
            state["notes"] = list(self.notes)
        return state

    def add_state(self, state: dict[str, Any]) -> None:
        """Merge a trial's state (as merge() would merge its report)."""
        for key, value in state.items():
            if key in self._NUMBERS:
                setattr(self, key, getattr(self, key) + value)
            elif key in self._COUNTERS:
                getattr(self, key).update(value)
            elif key == "skips":
                self.skips.extend(Skip(*skip) for skip in value)
            elif key == "alike":
                self.alike.update({(k, p, r): n for k, p, r, n in value})
            elif key == "notes":
                self.notes.extend(value)

    def skip_counts(self) -> Counter:
        """Skips grouped by kind and reason, the data quoted in a reason (names, numbers,
        the step) left out so that alike reasons count together."""
        exact = Counter((s.kind, s.reason) for s in self.skips)  # skips repeat their reasons
        grouped: Counter = Counter()
        for (kind, reason), n in exact.items():
            grouped[kind, _reason_group(reason)] += n
        for (kind, _, group), n in self.more_alike().items():
            grouped[kind, printable(group)] += n
        return grouped

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials_found": self.trials_found,
            "trials_exported": self.trials_exported,
            "trials_filtered": self.trials_filtered,
            "rows": self.rows,
            "rows_by_split": dict(self.rows_by_split),
            "skipped": [{"kind": s.kind, "path": s.path, "reason": s.reason} for s in self.skips],
            "skipped_alike_not_listed": [{"kind": k, "path": printable(p), "reason": printable(r), "count": n}
                                         for (k, p, r), n in sorted(self.more_alike().items())],
            "skipped_counts": {f"{k}: {r}": n for (k, r), n in sorted(self.skip_counts().items())},
            "filtered": dict(sorted(self.filtered.items())),
            "redactions": dict(sorted(self.redactions.items())),
            "reshaped": dict(sorted(self.reshaped.items())),
            **({"ray_tasks_per_node": dict(sorted(self.nodes.items()))} if self.nodes else {}),
            "images_replaced": self.images,
            "audio_replaced": self.audio,
            "notes": [printable(n) for n in self.notes],
        }

    def summary_lines(self) -> list[str]:
        lines = [
            f"{self.rows} rows from {self.trials_exported} of {self.trials_found} trials"
            + (f" ({self.trials_filtered} filtered out)" if self.trials_filtered else "")
        ]
        if self.filtered:
            lines.append("filtered out: " + ", ".join(f"{k}={v}" for k, v in sorted(self.filtered.items())))
        if self.rows_by_split:
            lines.append(
                "splits: " + ", ".join(f"{k}={v}" for k, v in self.rows_by_split.items())
            )
        counts = Counter(s.kind for s in self.skips)
        for (kind, _, _), n in self.more_alike().items():
            counts[kind] += n
        if counts:
            lines.append(
                "skipped: "
                + ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(counts.items()))
            )
            for (kind, reason), n in sorted(self.skip_counts().items()):
                lines.append(f"  {n} x {kind}: {reason}")
        if self.redactions:
            total = sum(self.redactions.values())
            lines.append(
                f"redacted {total} secrets: "
                + ", ".join(f"{k}={v}" for k, v in sorted(self.redactions.items()))
            )
        if self.reshaped:
            lines.append("reshaped: " + ", ".join(f"{v} {k}" for k, v in sorted(self.reshaped.items())))
        if self.images:
            lines.append(f"{self.images} images replaced by a text placeholder")
        if self.audio:
            lines.append(f"{self.audio} audio clips replaced by a text placeholder")
        lines.extend(printable(n) for n in self.notes[:MAX_NOTES])
        if len(self.notes) > MAX_NOTES:
            lines.append(f"... and {len(self.notes) - MAX_NOTES} more notes (--report FILE lists them)")
        return lines
