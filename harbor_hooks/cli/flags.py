"""Typer flags generated from the option models: one field, one flag on every command.

`traces export` gets `--name`; `run` and `sweeps run` get `--export-name`. Every flag is
read as text (or a bool, or repeated text) and checked by the model, so a bad value gives
the model's message, the same as from YAML, env or the API.
"""

# No `from __future__ import annotations`: typer reads these annotations as objects

import functools
import inspect
import typing
from typing import Annotated, Any, Callable, Literal, Optional

import typer
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from harbor_hooks.options import option_of

PREFIX = "export_"
OFF = "off__"  # the parameter of a choice's `--no-<name>` flag


def _is(annotation: Any, kind: type) -> bool:
    args = typing.get_args(annotation)
    return annotation is kind or typing.get_origin(annotation) is kind or kind in args


def _dashed(name: str) -> str:
    return "--" + name.replace("_", "-")


def _prefixed(decl: str) -> list[str]:
    """`--x` -> `--export-x`, `--no-x` -> `--no-export-x` (and the older `--export-no-x`),
    for each side of an on/off pair."""
    sides = [s.strip() for s in decl.split("/")]
    on = "--export-" + sides[0][2:]
    if len(sides) == 1:
        return [on]
    off = sides[1]
    if off.startswith("--no-"):
        return [f"{on}/--no-export-{off[5:]}", f" /--export-no-{off[5:]}"]
    return [f"{on}/--export-{off[2:]}"]


def _help(field: FieldInfo) -> str:
    text = field.description or ""
    choices = [a for a in typing.get_args(field.annotation)] if typing.get_origin(field.annotation) is Literal else []
    if choices:
        text = f"{' | '.join(choices)}: {text}"
    if field.default not in (None, [], (), PydanticUndefined):
        default = field.default
        text += f" [default: {str(default).lower() if isinstance(default, bool) else default}]"
    return text


def _metavar(field: FieldInfo) -> str | None:
    kinds = (field.annotation, *typing.get_args(field.annotation))
    if field.annotation is bool:
        return None
    if int in kinds:
        return "INTEGER"
    if float in kinds:
        return "NUMBER"
    if typing.get_origin(field.annotation) is Literal:
        return "|".join(typing.get_args(field.annotation))
    return "PATH" if "Path" in str(field.annotation) else "TEXT"


def option_params(models: tuple, command: str, include: set[str] | None = None) -> list[inspect.Parameter]:
    """The typer parameters of the models' fields on command ("export", "run", "sweeps", "push")."""
    params = []
    prefixed = command in ("run", "sweeps")
    for model in models:
        panel = model.panel
        for name, field in model.model_fields.items():
            opt = option_of(field)
            if include is not None and name not in include:
                continue
            if command not in opt.commands and include is None:
                continue
            is_bool = field.annotation is bool
            decl = opt.flag or (f"{_dashed(name)}/--no-{name.replace('_', '-')}" if is_bool else _dashed(name))
            decls = [_prefixed(d)[0] for d in (decl, *opt.flag_aliases)] if prefixed and not is_bool else \
                _prefixed(decl) if prefixed else [decl, *opt.flag_aliases]
            if command == "export":
                decls += [opt.short] if opt.short else []
            if command == "sweeps":
                decls += list(opt.sweeps_flag_aliases)
            annotation = Optional[bool] if is_bool else (
                Optional[list[str]] if _is(field.annotation, list) else Optional[str])
            params.append(inspect.Parameter(
                PREFIX + name if prefixed else name, inspect.Parameter.KEYWORD_ONLY, default=None,
                annotation=Annotated[annotation, typer.Option(*decls, help=_help(field), show_default=False,
                                                        rich_help_panel=panel, metavar=_metavar(field))]))
            if opt.off is not None:  # `--no-<name>`: the choice's off value (an older bool flag)
                dashed = name.replace("_", "-")
                offs = [f"--no-export-{dashed}", f"--export-no-{dashed}"] if prefixed else [f"--no-{dashed}"]
                params.append(inspect.Parameter(
                    OFF + (PREFIX + name if prefixed else name), inspect.Parameter.KEYWORD_ONLY, default=False,
                    annotation=Annotated[bool, typer.Option(*offs, help=f"= {decls[0]} {opt.off}",
                                                           rich_help_panel=panel)]))
    return params


def with_options(params: list[inspect.Parameter]) -> Callable:
    """A decorator: the command takes its own parameters, then params, all as keywords."""
    def decorate(fn: Callable) -> Callable:
        own = [p for p in inspect.signature(fn).parameters.values() if p.kind != p.VAR_KEYWORD]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            return fn(**kwargs)

        signature = inspect.Signature([*own, *params])
        command.__signature__ = signature  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        del command.__wrapped__  # typer must read the signature above, not fn's
        return command
    return decorate


def option_values(kwargs: dict[str, Any], params: list[inspect.Parameter]) -> dict[str, Any]:
    """The option values given on the command line, by field name (None = not given)."""
    out = {}
    for param in params:
        value = kwargs.get(param.name)
        if param.name.startswith(OFF):
            if value:
                field = param.name.removeprefix(OFF).removeprefix(PREFIX)
                out[field] = "false"  # the model maps it to the field's off value
        elif value is not None:
            out[param.name.removeprefix(PREFIX)] = value
    return out
