"""HooksSettings: defaults < YAML job config `export:` (or `hooks:`) < HARBOR_HOOKS_* env < CLI flags."""

from __future__ import annotations

import contextvars
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "HARBOR_HOOKS_"
_yaml_section: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "harbor_hooks_yaml_section", default={})


class SettingsError(ValueError):
    """An invalid setting; the message names the key, where it can be set, and why."""


class _YamlSection(PydanticBaseSettingsSource):
    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k.replace("-", "_"): v for k, v in _yaml_section.get().items()}


# `schema` (the row schema option) shadows pydantic's deprecated BaseModel.schema(),
# which nothing here calls; the option keeps the name users type.
warnings.filterwarnings("ignore", message='Field name "schema" in "HooksSettings" shadows')


class HooksSettings(BaseSettings):
    """Every export, push and hook option, with its env name HARBOR_HOOKS_<NAME>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid",
                                      validate_default=True)

    # export
    traces: bool = Field(False, description="run: export traces when the job completes")
    episodes: Literal["all", "last"] = "all"
    filter: Literal["success", "failure", "all"] = "all"
    sharegpt: bool = False
    subagents: bool = True
    instruction_metadata: bool = False
    verifier_metadata: bool = False
    redact: bool = True
    redact_patterns: list[str] = Field(default_factory=list)
    workers: int | None = Field(None, ge=1)
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(None, description="a Ray cluster to join (--engine ray)")
    max_file_bytes: int = Field(64 << 20, ge=1, description="larger trial files are skipped unread")
    max_message_bytes: int = Field(16 << 20, ge=1, description="a longer message skips its file/episode")
    max_rows_per_trial: int = Field(1000, ge=1, description="episode rows kept per trial")
    output: Path | None = None
    report: Path | None = None
    schema: Literal["harbor", "messages", "llamafactory"] = "harbor"
    rows: Literal["episode", "trajectory"] = "episode"
    reasoning: Literal["field", "inline"] = "field"
    min_reward: float | None = None
    max_turns: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=0)
    agent_filter: list[str] = Field(default_factory=list, description="agent name globs to keep")
    model_filter: list[str] = Field(default_factory=list, description="model name globs to keep")
    task_filter: list[str] = Field(default_factory=list, description="task name globs to keep")
    exclude_exceptions: bool = False
    dedupe: bool = False
    images: Literal["placeholder", "keep"] = "placeholder"
    # push
    push: bool = False
    repo: str | None = None
    separate: bool = False
    repo_success: str | None = None
    repo_failure: str | None = None
    private: bool = False
    revision: str | None = None
    commit_message: str | None = None
    max_shard_size: str = "500MB"
    append: bool = False
    token: SecretStr | None = None
    push_retries: int = Field(5, ge=0, description="retries of a failed Hub request")
    push_backoff: float = Field(2.0, ge=0, description="first retry wait in seconds, doubled each time")
    card_license: str = "other"
    # service
    log_format: Literal["console", "json"] = "console"

    @field_validator("repo", "repo_success", "repo_failure")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        if value is not None and (value.count("/") != 1 or not all(value.split("/"))):
            raise ValueError(f"expected ORG/NAME, got {value!r}")
        return value

    @field_validator("redact_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        import re
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, _YamlSection(settings_cls))

    def export_options(self, split_by: str | None = None):
        from harbor_hooks.export import ExportOptions

        return ExportOptions(
            episodes=self.episodes, success_filter=self.filter,
            sharegpt=self.sharegpt, subagents=self.subagents,
            instruction=self.instruction_metadata, verifier=self.verifier_metadata,
            redact=self.redact, redact_patterns=tuple(self.redact_patterns), split_by=split_by,
            max_file_bytes=self.max_file_bytes, max_message_bytes=self.max_message_bytes,
            max_rows_per_trial=self.max_rows_per_trial, schema=self.schema, rows=self.rows,
            reasoning=self.reasoning, min_reward=self.min_reward, max_turns=self.max_turns,
            max_chars=self.max_chars, agents=tuple(self.agent_filter),
            models=tuple(self.model_filter), tasks=tuple(self.task_filter),
            exclude_exceptions=self.exclude_exceptions, dedupe=self.dedupe, images=self.images,
        )


    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token else None

    def push_options(self, repo: str):
        from harbor_hooks.hub import PushOptions

        return PushOptions(
            repo_id=repo, private=self.private, revision=self.revision,
            commit_message=self.commit_message, max_shard_size=self.max_shard_size,
            token=self.token_value(), append=self.append, retries=self.push_retries,
            backoff=self.push_backoff, card_license=self.card_license,
        )


# the name kept for plugin authors who think of these as export settings
ExportSettings = HooksSettings


def yaml_section(config: dict[str, Any] | None) -> dict[str, Any]:
    """The `export:` (or `hooks:`) section of a job config."""
    if not isinstance(config, dict):
        return {}
    section = config.get("export", config.get("hooks"))
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise SettingsError("the 'export:' section of the job config must be a mapping")
    return section


def output_kind(target: str) -> str:
    """What --output names: "parquet", "jsonl" (.jsonl or .json), or "dir" (save_to_disk)."""
    lower = target.lower()
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith((".jsonl", ".json")):
        return "jsonl"
    return "dir"


def load_settings(section: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None,
                  **flags: Any) -> HooksSettings:
    """Settings from a YAML section, the environment and CLI flags (None = flag not given).

    defaults are a command's own defaults (e.g. sweeps export the last episode); they
    sit under the YAML section.
    """
    token = _yaml_section.set({**(defaults or {}), **(section or {})})
    try:
        return HooksSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
    finally:
        _yaml_section.reset(token)


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "settings"
        where = f"{ENV_PREFIX}{key.upper()}, export.{key} in the job config, or its flag"
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown setting {key!r} (check export.{key} and {ENV_PREFIX}* variables)")
        else:
            lines.append(f"invalid setting {key!r}: {error['msg']} (set by {where})")
    return "; ".join(lines)
