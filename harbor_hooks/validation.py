"""Options as a front door receives them: sorted by the model they belong to (split),
validated (build), and every error described in one line that names each place the option
can be set (where), the same whatever front door set it."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from harbor_hooks.errors import SettingsError
from harbor_hooks.options import ENV_PREFIX, OPTION_MODELS, ServiceOptions, _Options, alias_map, option_of


def where(name: str) -> str:
    """Where an option is set, at every front door it has."""
    flag = name.replace("_", "-")
    model = next((m for m in (*OPTION_MODELS, ServiceOptions) if name in m.model_fields), None)
    commands = option_of(model.model_fields[name]).commands if model else ()
    flags = [f"--{flag}" if ("export" in commands or model is ServiceOptions) else None,
             f"--export-{flag}" if {"run", "sweeps"} & set(commands) else None]
    places = [" / ".join(f for f in flags if f), f"export.{name} in YAML", f"{ENV_PREFIX}{name.upper()}"]
    if model in OPTION_MODELS:
        places.append(f"{name}= in Python")
    return ", ".join(p for p in places if p)


def describe_errors(exc: ValidationError, secret: frozenset[str] = frozenset({"token"})) -> str:
    """One line per invalid option, the same whatever front door set it."""
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a rule between options: its message names them
            lines.append(message)
            continue
        key = str(error["loc"][0])
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown option {key!r}")
            continue
        value = error.get("input")
        # quoted as text whatever its type: a flag or env gives "-1" where YAML or Python give -1
        if key not in secret and isinstance(value, (str, int, float)) and len(str(value)) < 80 \
                and f"'{value}'" not in message:
            message += f", got '{value}'"
        lines.append(f"invalid option {key!r}: {message} ({where(key)})")
    return "; ".join(lines)


def build(model: type[_Options], values: dict[str, Any]) -> Any:
    """model(**values), or a SettingsError with describe_errors' message."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def split(values: dict[str, Any]) -> tuple[dict[type[_Options], dict[str, Any]], list[str]]:
    """Keyword values (canonical names or aliases) sorted by the option model they belong to,
    and the names that belong to none."""
    out: dict[type[_Options], dict[str, Any]] = {m: {} for m in OPTION_MODELS}
    unknown = []
    for key, value in values.items():
        owner = next((m for m in OPTION_MODELS if key in m.model_fields or key in alias_map(m)), None)
        if owner is None:
            unknown.append(key)
        else:
            out[owner][key] = value
    return out, unknown
