"""HooksSettings: the option models, read from defaults < YAML `export:` < HARBOR_HOOKS_* env < flags.

It composes the models by inheritance: every field, validator and alias comes from
options.py, and nothing is copied field by field.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from harbor_hooks.validation import describe_errors
from harbor_hooks.errors import SettingsError
from harbor_hooks.options import (
    ENV_PREFIX, ExportOptions, OutputOptions, PushOptions, ServiceOptions, alias_map,
)

_yaml_section: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "harbor_hooks_yaml_section", default={})


class _YamlSection(PydanticBaseSettingsSource):
    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k.replace("-", "_"): v for k, v in _yaml_section.get().items()}


class _AliasEnv(PydanticBaseSettingsSource):
    """HARBOR_HOOKS_<ALIAS> for the options' aliases (older names: HARBOR_HOOKS_AGENT_FILTER)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for alias, name in alias_map(self.settings_cls).items():
            raw = os.environ.get(ENV_PREFIX + alias.upper())
            if raw is not None and ENV_PREFIX + name.upper() not in os.environ:
                found[name] = raw
        return found


class HooksSettings(BaseSettings, ExportOptions, OutputOptions, PushOptions, ServiceOptions):
    """Every export, output, push and service option, with its env name HARBOR_HOOKS_<NAME>."""

    # env values are decoded by the options' own rule (a list: JSON, else one value)
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=False,
                                      validate_default=True, defer_build=False, enable_decoding=False)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, _AliasEnv(settings_cls), _YamlSection(settings_cls))

    def _part(self, model: type) -> Any:
        # already validated: the parts are built without validating again
        return model.model_construct(**{name: getattr(self, name) for name in model.model_fields})

    def export_options(self) -> ExportOptions:
        return self._part(ExportOptions)

    def output_options(self) -> OutputOptions:
        return self._part(OutputOptions)

    def push_options(self) -> PushOptions:
        return self._part(PushOptions)


# the name kept for plugin authors who think of these as export settings
ExportSettings = HooksSettings


def yaml_section(config: dict[str, Any] | None) -> dict[str, Any]:
    """The `export:` (or `hooks:`) section of a job config."""
    if not isinstance(config, dict):
        return {}
    if "export" in config and "hooks" in config:
        raise SettingsError("the job config has both an 'export:' and a 'hooks:' section: keep one")
    section = config.get("export", config.get("hooks"))
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise SettingsError("the 'export:' section of the job config must be a mapping")
    return section


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
