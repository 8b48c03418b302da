"""Every option of harbor-hooks, declared once: a pydantic field with its type, allowed values,
bounds, default and help text.

The front doors are derived from these fields: `traces export` flags, `run` / `sweeps run`
`--export-*` flags, YAML `export:` keys, `HARBOR_HOOKS_*` env names (settings.py), the
`export_traces` keywords (api.py) and the dataset card. An `Option` in a field's metadata
only says what a name cannot: Harbor's aliases, a short flag, a flag pair's other name.
"""

# No `from __future__ import annotations`: pydantic would evaluate every annotation string
# at import (3 ms of start-up); as objects they cost nothing

import json
import os
import re
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from harbor_hooks.targets import UrlPath, output_kind


# `schema` (the row schema option) shadows pydantic's deprecated BaseModel.schema(), which
# nothing here calls; the option keeps the name users type
warnings.filterwarnings("ignore", message='Field name "schema" in ".*" shadows')


@dataclass(frozen=True)
class Option:
    """Front-door names of a field beyond its own (`--name`, `name:`, `HARBOR_HOOKS_NAME`, `name=`)."""

    aliases: tuple[str, ...] = ()  # other keyword / YAML names (Harbor 0.24's first)
    flag: str | None = None  # the flag, when not --name (a bool's "--on/--off" pair)
    short: str | None = None  # e.g. -o
    sweeps_flag_aliases: tuple[str, ...] = ()  # more declarations on `sweeps run` (Harbor's)
    off: str | None = None  # the value a `--no-<name>` flag sets (and a false given for a choice)
    flag_aliases: tuple[str, ...] = ()  # older flag names (`--images` for --media)
    commands: tuple[str, ...] = ("export", "run", "sweeps")  # the commands with a flag for it


def option_of(field: Any) -> Option:
    return next((m for m in field.metadata if isinstance(m, Option)), Option())


class _Options(BaseModel):
    """Shared rules: unknown names are refused, Harbor's aliases are accepted, and None
    means "the default" for an option that cannot be None (Harbor passes success_filter=None)."""

    # defer_build: a command validates HooksSettings only, and builds these parts from it
    # without validating again, so their validators are made only where used (10 ms of start-up)
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _canonical_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        out: dict[str, Any] = {}
        given: dict[str, str] = {}
        for key, value in data.items():
            name = alias_map(cls).get(key.replace("-", "_") if isinstance(key, str) else key, key)
            if value is None and name in fields and not _nullable(fields[name]):
                continue
            if name in given:
                raise ValueError(f"option {name!r} is given twice, as {given[name]!r} and {key!r}")
            given[name] = key
            field = fields.get(name)
            if field is not None:
                value = _plain(name, field.annotation, value)
                off = option_of(field).off
                if off is not None and isinstance(value, bool | str) and str(value).lower() in (
                        "true", "false", "1", "0", "yes", "no", "on", "off"):
                    # a choice that was a bool (Harbor's export_subagents=False)
                    value = field.default if str(value).lower() in ("true", "1", "yes", "on") else off
            out[name] = value
        return out


def _plain(name: str, annotation: Any, value: Any) -> Any:
    """A list option given one string (an env var, a YAML scalar) as a list: JSON if it is
    one, else the string alone; a boolean is no number (YAML `max_turns: yes`)."""
    kinds = (annotation, *typing.get_args(annotation))
    if isinstance(value, str) and any(typing.get_origin(k) is list or k is list for k in kinds):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError(f"invalid option {name!r}: not a JSON list, got {value!r}") from None
        return [value] if text else []
    if isinstance(value, bool) and (int in kinds or float in kinds):
        raise ValueError(f"invalid option {name!r}: expected a number, got {value}")
    return value


def _nullable(field: Any) -> bool:
    return field.default is None


_ALIASES: dict[type, dict[str, str]] = {}


def alias_map(model: type[BaseModel]) -> dict[str, str]:
    """alias -> field name, for every field of model that has aliases."""
    if model not in _ALIASES:
        _ALIASES[model] = {a: name for name, f in model.model_fields.items() for a in option_of(f).aliases}
    return _ALIASES[model]


Globs = Annotated[list[str], Field(default_factory=list)]


class ExportOptions(_Options):
    """What to export and how: handed as it is (it pickles) to every worker. Never a secret."""

    panel: ClassVar[str] = "What to export"

    recursive: Annotated[bool, Option()] = Field(
        True, description="Search for trials below --path; off: --path must be a trial.")
    episodes: Literal["all", "last"] = Field(
        "all", description="Every episode, or the last complete one per trial.")
    filter: Annotated[Literal["success", "failure", "all"], Option(aliases=("success_filter",))] = Field(
        "all", description="Keep successes (reward > 0, decided as Harbor does), failures, or all.")
    sharegpt: Annotated[bool, Option(aliases=("to_sharegpt",))] = Field(
        False, description="Add a conversations_sharegpt column ([{from, value}]).")
    subagents: Annotated[Literal["separate", "inline", "none"], Option(aliases=("export_subagents",),
                                                                      off="none")] = Field(
        "separate", description="Subagent trajectories as rows of their own, inline in the tool result "
                                "of the call that spawned them, or left out (--no-subagents).")
    instruction_metadata: Annotated[bool, Option(aliases=("include_instruction", "instruction"))] = Field(
        False, description="Add an instruction column (the first non-empty step message).")
    verifier_metadata: Annotated[bool, Option(aliases=("include_verifier_output", "verifier"))] = Field(
        False, description="Add a verifier_output column (test-stdout.txt then test-stderr.txt).")
    embed_tools: Annotated[bool, Option(aliases=("embed_tools_in_conversation",))] = Field(
        True, description="harbor schema: the tool definitions in a <tools> block before the first user message.")
    schema: Literal["harbor", "messages", "llamafactory", "prompt-completion"] = Field(
        "harbor", description="Row schema: Harbor's, OpenAI/TRL messages, LLaMA-Factory sharegpt, "
                              "or TRL's prompt-completion.")
    rows: Literal["episode", "trajectory"] = Field(
        "episode", description="One row per episode prefix (Harbor's), or one per whole conversation.")
    reasoning: Literal["field", "inline"] = Field(
        "field", description="messages schema: reasoning_content, or <think> tags in the content.")
    train_on: Literal["all", "last"] = Field(
        "all", description="Which assistant turns of a row carry loss: a train flag on each (messages, "
                           "llamafactory), the completion (prompt-completion).")
    alternate_roles: bool = Field(
        False, description="Strict user/assistant alternation (Mistral, Gemma): neighbours of one role "
                           "merged, a later system message made user text, 9-character call ids (counted).")
    one_call_per_turn: bool = Field(
        False, description="Each tool call its own assistant message, answered before the next; text beside "
                           "calls a message before them (Llama-3.1, gpt-oss, Hermes show no more; counted).")
    tokenizer: Path | None = Field(
        None, description="A local tokenizer folder: add input_ids, labels (-100 but on trained "
                          "assistant tokens) and n_tokens columns.")
    max_tokens: int | None = Field(None, ge=1, description="With --tokenizer: drop rows of more tokens (counted).")
    token_ids: bool = Field(
        False, description="Keep ATIF's prompt_token_ids, completion_token_ids and logprobs as columns.")
    media: Annotated[Literal["placeholder", "keep"], Option(aliases=("images",), flag_aliases=("--images",))] = Field(
        "placeholder", description="ATIF images and audio as [image: path] / [audio: path] text (counted), "
                                   "or also as images and audio columns (datasets.Image, datasets.Audio).")
    splits: Annotated[bool, Option(commands=("export", "run"))] = Field(
        False, description="A DatasetDict with success and failure splits (sweeps always split).")
    min_reward: float | None = Field(None, allow_inf_nan=False, description="Keep trials whose reward is at least this.")
    max_turns: int | None = Field(None, ge=0, description="Drop rows with more assistant turns.")
    max_chars: int | None = Field(None, ge=0, description="Drop rows with more characters of conversation.")
    agent: Annotated[Globs, Option(aliases=("agent_filter", "agents"))] = Field(
        description="Keep trials of matching agents (glob; repeatable).")
    model: Annotated[Globs, Option(aliases=("model_filter", "models"))] = Field(
        description="Keep rows of matching models (glob; repeatable).")
    task: Annotated[Globs, Option(aliases=("task_filter", "tasks"))] = Field(
        description="Keep trials of matching tasks (glob; repeatable).")
    exclude_exceptions: bool = Field(False, description="Drop trials that ended in an exception.")
    max_per_task: int | None = Field(
        None, ge=1, description="Keep at most this many trials of each task, drawn with --seed (counted).")
    val_fraction: float | None = Field(
        None, gt=0, lt=1, description="Put this fraction of the tasks, drawn with --seed, in a validation split.")
    seed: int = Field(0, description="Seed of --max-per-task and --val-fraction draws.")
    decontaminate: Path | None = Field(
        None, description="Drop rows whose instruction shares an n-gram with a prompt of this JSONL or "
                          "text file (benchmark prompts; counted).")
    decontaminate_ngram: int = Field(8, ge=1, description="Words per n-gram of --decontaminate.")
    dedupe: bool = Field(False, description="Drop rows whose conversation repeats an earlier row's (counted).")
    redact: bool = Field(True, description="Replace secrets (API keys, tokens, private keys) in rows.")
    redact_patterns: Annotated[Globs, Option()] = Field(
        description="More regular expressions to redact (repeatable).")
    max_file_bytes: int = Field(64 << 20, ge=1, description="Skip (and count) larger trial files, unread.")
    max_message_bytes: int = Field(16 << 20, ge=1, description="A longer message skips its file or episode.")
    max_rows_per_trial: int = Field(1000, ge=1, description="Keep at most this many episode rows per trial.")
    workers: int | None = Field(None, ge=1, le=1024, description="Worker processes (default: the machine's cores).")
    engine: Literal["local", "ray"] = Field(
        "local", description="local worker processes, or Ray on a cluster (paths or fsspec URLs).")
    ray_address: str | None = Field(None, description="--engine ray: join this cluster (else start a local one).")

    @field_validator("decontaminate")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not os.path.isfile(value):
            raise ValueError(f"{value}: no such file")
        return value

    @field_validator("tokenizer")
    @classmethod
    def _local_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not os.path.isdir(value):
            raise ValueError(f"{value}: no such folder (a local tokenizer folder; never fetched from a hub)")
        return value

    @model_validator(mode="after")
    def _tokens_need_a_tokenizer(self) -> "ExportOptions":
        if self.max_tokens is not None and self.tokenizer is None:
            raise ValueError("--max-tokens counts tokens: give --tokenizer too")
        if self.tokenizer is not None and self.schema not in ("messages", "prompt-completion"):
            raise ValueError("--tokenizer renders chat messages: use --schema messages or prompt-completion")
        return self

    @field_validator("redact_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
            if regex.match(""):
                raise ValueError(f"{pattern!r} matches the empty string: it would redact between every character")
        return value


class OutputOptions(_Options):
    """Where the export is written."""

    panel: ClassVar[str] = "Where to write it"

    output: Annotated[Path | None, Option(short="-o")] = Field(
        None, description="Write .parquet, .jsonl, or a directory (save_to_disk); with splits, "
                          "out-success.parquet and out-failure.parquet.")
    report: Path | None = Field(None, description="Write every skipped item and all counts as JSON.")
    format: Annotated[Literal["hf", "otel"], Option(short="-f", commands=("export",))] = Field(
        "hf", description="hf: a dataset (rows); otel: one OpenTelemetry trace per trial, spans for steps "
                          "and tool calls (the [otel] extra).")
    endpoint: Annotated[str | None, Option(commands=("export",))] = Field(
        None, description="otel: OTLP/HTTP endpoint to send the traces to (else OTEL_EXPORTER_OTLP_ENDPOINT; "
                          "headers from OTEL_EXPORTER_OTLP_HEADERS).")
    encoding: Annotated[Literal["json", "pb"], Option(commands=("export",))] = Field(
        "json", description="otel: json (a .jsonl file, OTLP/JSON lines) or pb (a folder of protobuf files).")
    overwrite: bool = Field(False, description="Replace an existing folder that holds no export of ours.")
    incremental: bool = Field(
        False, description="Keep the rows and a manifest beside --output (OUTPUT.incremental/): a re-export "
                           "reads only new or changed trials, and gives the same output as a full one.")

    @field_validator("output", mode="before")
    @classmethod
    def _url_kept(cls, value: Any) -> Any:
        """An fsspec URL kept whole (a Path would make s3://b of it s3:/b, a local folder)."""
        return UrlPath(value) if isinstance(value, str) and "://" in value else value

    @field_validator("output")
    @classmethod
    def _known_kind(cls, value: Path | None) -> Path | None:
        if value is not None and output_kind(str(value)) is None:
            raise ValueError(f"unknown output type {value.suffix!r}: use .parquet, .jsonl "
                             "(or .json), or a folder")
        return value

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return value if value is None else check_endpoint(value)

    @model_validator(mode="after")
    def _otel_target(self) -> "OutputOptions":
        if self.format != "otel":
            return self
        if self.output is None and not (self.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
            raise ValueError("--format otel writes to --output or --endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT)")
        if self.output is not None and self.kind != ("jsonl" if self.encoding == "json" else "dir"):
            raise ValueError(f"--format otel --encoding {self.encoding} writes "
                             f"{'a .jsonl file' if self.encoding == 'json' else 'a folder'}, not {self.output}")
        return self

    @model_validator(mode="after")
    def _report_apart(self) -> "OutputOptions":
        if self.output is not None and self.report is not None and \
                os.path.abspath(self.output) == os.path.abspath(self.report):
            raise ValueError("the report would overwrite the output: give --report another path")
        return self

    @property
    def kind(self) -> str | None:
        return output_kind(str(self.output)) if self.output is not None else None


# the Hub's rule for a namespace or a name: letters, digits, - _ . ; no -- or ..; not starting
# or ending with - or .; at most 96 characters
_HUB_NAME = r"(?!.*(?:--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(f"{_HUB_NAME}/{_HUB_NAME}")
_SIZE = re.compile(r"\d+(?:\.\d+)?\s*(?:[KMGT]i?)?B", re.I)


def _repo_id(value: str | None) -> str | None:
    if value is not None and not _REPO_ID.fullmatch(value):
        raise ValueError("expected ORG/NAME (letters, digits, - _ . ; no -- or ..)")
    return value


class PushOptions(_Options):
    """Where and how the export is pushed to the Hugging Face Hub."""

    panel: ClassVar[str] = "Push to the Hub"

    push: Annotated[bool, Option(sweeps_flag_aliases=("--push/--no-push",))] = Field(
        False, description="Push to the Hugging Face Hub.")
    repo: Annotated[str | None, Option(aliases=("repo_id",))] = Field(
        None, description="Hub dataset repo ORG/NAME.")
    separate: Annotated[bool, Option(flag="--separate/--no-separate",
                                     sweeps_flag_aliases=("--no-export-splits/--export-splits",))] = Field(
        False, description="Push successes and failures to two repos (--repo-success, --repo-failure).")
    repo_success: str | None = Field(None, description="Repo for the successes with --separate.")
    repo_failure: str | None = Field(None, description="Repo for the failures with --separate.")
    private: Annotated[bool, Option(flag="--private/--public")] = Field(
        True, description="Visibility of a repo that the push creates: private unless --public "
                          "(traces are sensitive even redacted; Harbor's default is public).")
    revision: str | None = Field(None, min_length=1, description="Branch to push to (created when missing).")
    commit_message: str | None = Field(None, description="Message of the push commit.")
    max_shard_size: str = Field("500MB", pattern=_SIZE.pattern, description="Largest Parquet shard pushed, e.g. 500MB.")
    append: bool = Field(False, description="Add to the rows already in the repo instead of replacing them.")
    commit_every: int = Field(
        100, ge=1, description="Shards per commit, committed as they are uploaded (the Hub allows 128 "
                               "commits an hour: 10,000 shards make 100).")
    single_commit: bool = Field(False, description="One commit for the whole push.")
    token: SecretStr | None = Field(None, description="Hub token (else HUGGINGFACE_TOKEN, else HF_TOKEN, "
                                                      "else `hf auth login`).")
    push_retries: int = Field(5, ge=0, description="Retries of a failed Hub request.")
    push_backoff: float = Field(2.0, ge=0, description="First retry wait in seconds, doubled each time.")
    card_license: str = Field("other", description="The license the dataset card declares.")

    @field_validator("repo", "repo_success", "repo_failure")
    @classmethod
    def _repos(cls, value: str | None) -> str | None:
        return _repo_id(value)

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token else None


class ServiceOptions(_Options):
    """Options of the hook service itself."""

    panel: ClassVar[str] = "Hook service"

    traces: Annotated[bool, Option(commands=("run",))] = Field(
        False, description="run: export traces when the job completes.")
    stream: Annotated[bool, Option(commands=("run",))] = Field(
        True, description="run: export each trial as it finishes (into <job_dir>/traces/), so that "
                          "only the assembly is left when the job completes.")
    log_format: Annotated[Literal["console", "json"], Option(commands=())] = Field(  # --log-format
        "console", description="Logs as readable lines or JSON lines (stderr).")


OPTION_MODELS: tuple[type[_Options], ...] = (ExportOptions, OutputOptions, PushOptions)


def check_endpoint(url: str) -> str:
    """An OTLP/HTTP endpoint: an http(s) URL with a host and a valid port."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    return url



ENV_PREFIX = "HARBOR_HOOKS_"
