"""export_traces(): the Python front door, with Harbor 0.24's keyword names.

Its keywords are the option models' fields (and their aliases): what `traces export`
takes as flags, this takes as keywords, checked with the same messages.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any

from harbor_hooks.log import get_logger
from harbor_hooks.options import OPTION_MODELS, ExportOptions, OutputOptions, PushOptions
from harbor_hooks.validation import build, split

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

# Harbor's harbor.utils.traces_utils.export_traces positional order, after root
HARBOR_POSITIONAL = ("recursive", "episodes", "to_sharegpt", "repo_id", "push", "verbose",
                     "success_filter", "export_subagents", "merge_subagents")
# Harbor keywords with no effect here (chunking and progress are always handled)
HARBOR_IGNORED = ("chunk_size", "use_rich_progress")


def export_traces(root: str | os.PathLike | list[str | os.PathLike], *args: Any,
                  verbose: bool = False, merge_subagents: bool = True, split_by: str | None = None,
                  **options: Any) -> "Dataset | DatasetDict | dict[str, Dataset]":
    """Export the Harbor trials under root into a `datasets.Dataset`.

    `export_traces("trials", episodes="last", success_filter="success")` works as
    Harbor's helper does. With `splits=True` (or `split_by="outcome"`) it returns a
    DatasetDict with `success` and `failure` splits; with `merge_subagents=False`, a
    dict of Datasets keyed by trace source ("main" and each subagent), as Harbor does.
    Every option of `harbor-hooks traces export` is a keyword (`output=` writes a file
    too; `push=True, repo_id=` pushes). A bad value raises SettingsError (a ValueError).
    """
    if len(args) > len(HARBOR_POSITIONAL):
        raise TypeError(f"export_traces() takes at most {len(HARBOR_POSITIONAL) + 1} positional arguments")
    positional = dict(zip(HARBOR_POSITIONAL, args))
    verbose = positional.pop("verbose", verbose)
    merge_subagents = positional.pop("merge_subagents", merge_subagents)
    for name, value in positional.items():
        if name in options:
            raise TypeError(f"export_traces() got multiple values for argument {name!r}")
        options[name] = value
    for name in HARBOR_IGNORED:
        options.pop(name, None)
    if split_by not in (None, "outcome", "source"):
        raise ValueError(f"split_by must be None, 'outcome' or 'source', not {split_by!r}")
    if split_by == "outcome":
        options["splits"] = True
    parts, unknown = split(options)
    if unknown:
        raise TypeError(f"export_traces() got an unexpected keyword argument {unknown[0]!r}")
    export: ExportOptions = build(ExportOptions, parts[ExportOptions])
    output: OutputOptions = build(OutputOptions, parts[OutputOptions])
    push: PushOptions = build(PushOptions, parts[PushOptions])
    from harbor_hooks.publish import publish

    by_source = (not merge_subagents or split_by == "source") and export.subagents != "none"
    log = get_logger()
    outcome = publish(root, export, output, push, by_source=by_source, keep_dataset=True,
                      log=lambda line: log.info(line))
    if verbose:
        for line in outcome.report.summary_lines():
            log.info(f"[traces] {line}")
        for skip in outcome.report.skips:
            log.info(f"[traces] {skip.line()}")
    return dict(outcome.dataset) if by_source else outcome.dataset


def _signature() -> inspect.Signature:
    """export_traces' signature as help() and IDEs show it: root, then every option."""
    params = [inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    seen = {"root"}
    for name, default in (("verbose", False), ("merge_subagents", True), ("split_by", None)):
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
        seen.add(name)
    for model in OPTION_MODELS:
        for name, field in model.model_fields.items():
            if name not in seen:
                seen.add(name)
                default = field.default if field.default_factory is None else field.default_factory()
                params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                                annotation=field.annotation))
    return inspect.Signature(params)


export_traces.__signature__ = _signature()  # type: ignore[attr-defined]
