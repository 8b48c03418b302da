"""Push to the Hugging Face Hub: one path for a Dataset, a DatasetDict, or two repos; a card; retries."""

from __future__ import annotations

import os

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from harbor_hooks.errors import PushError
from harbor_hooks.hub.card import CardInfo, push_card
from harbor_hooks.options import PushOptions
from harbor_hooks.report import ExportReport
from harbor_hooks.version import __version__

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

T = TypeVar("T")
RETRY_STATUS = {429, 500, 502, 503, 504}


def resolve_token(explicit: str | None = None) -> str:
    """--token, else HUGGINGFACE_TOKEN, else HF_TOKEN (Harbor's order), else the token stored
    by `hf auth login`; fail before any work."""
    if explicit:
        return explicit
    from huggingface_hub import get_token

    token = os.environ.get("HUGGINGFACE_TOKEN") or get_token()
    if not token:
        raise PushError("no Hugging Face token: pass --token, set HUGGINGFACE_TOKEN or HF_TOKEN, "
                        "or log in once with `hf auth login`")
    return token


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _transient(exc: BaseException) -> bool:
    import httpx

    status = _status(exc)
    if status is not None:
        return status in RETRY_STATUS
    return isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError))


def with_retries(what: str, fn: Callable[[], T], opts: PushOptions,
                 log: Callable[[str], None] = lambda _: None) -> T:
    """Run fn, retrying transient Hub failures with exponential backoff (Retry-After honoured)."""
    delay = opts.push_backoff
    for attempt in range(opts.push_retries + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not _transient(exc) or attempt == opts.push_retries:
                raise
            wait = _retry_after(exc)
            wait = delay if wait is None else min(wait, 300.0)
            log(f"{what}: {_describe(exc)}; retry {attempt + 1}/{opts.push_retries} in {wait:.1f}s")
            time.sleep(wait)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(exc: BaseException) -> str:
    status = _status(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"HTTP {status}" if status else first


def push(dataset: "Dataset | DatasetDict", opts: PushOptions, repo: str,
         report: ExportReport | None = None, card: CardInfo | None = None,
         log: Callable[[str], None] = lambda _: None) -> str:
    """Push a Dataset or DatasetDict to repo with its card; return the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    token = resolve_token(opts.token_value())
    api = HfApi(token=token)
    try:
        with_retries("create repo", lambda: api.create_repo(
            repo, repo_type="dataset", private=opts.private, exist_ok=True), opts, log)
        if opts.revision:
            with_retries("create branch", lambda: api.create_branch(
                repo, repo_type="dataset", branch=opts.revision, exist_ok=True), opts, log)
        splits = row_counts(dataset)
        if opts.append:
            dataset = _with_existing_rows(api, dataset, opts, repo)
        message = opts.commit_message or f"Upload {sum(splits.values())} rows with harbor-hooks {__version__}"
        with _commits_of(None if opts.single_commit else opts.commit_every):
            info = with_retries("push", lambda: dataset.push_to_hub(
                repo, private=opts.private, token=token, revision=opts.revision,
                commit_message=message, max_shard_size=opts.max_shard_size), opts, log)
        with_retries("dataset card", lambda: push_card(api, dataset, opts, repo, report, card), opts, log)
    except HfHubHTTPError as exc:
        raise PushError(f"push to {repo} failed: {_describe(exc)}") from exc
    except PushError:
        raise
    except Exception as exc:
        import httpx
        if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError, OSError)):
            raise PushError(f"push to {repo} failed: {type(exc).__name__}: {exc}") from exc
        raise
    return getattr(info, "commit_url", None) or f"{repo}"


@contextmanager
def _commits_of(shards: int | None) -> Iterator[None]:
    """datasets' push_to_hub uploads each Parquet shard as it is written, then commits the
    files in batches of config.UPLOADS_MAX_NUMBER_PER_COMMIT: that batch, set here (None: all
    in one commit). A push run again after being killed re-uploads nothing the Hub already
    holds: its LFS batch answers "present" for a shard of the same content (sha256)."""
    from datasets import config

    before = config.UPLOADS_MAX_NUMBER_PER_COMMIT
    config.UPLOADS_MAX_NUMBER_PER_COMMIT = shards or 1 << 62
    try:
        yield
    finally:
        config.UPLOADS_MAX_NUMBER_PER_COMMIT = before


def row_counts(dataset: Any) -> dict[str, int]:
    """Rows per split of a Dataset (\"train\") or a DatasetDict."""
    if hasattr(dataset, "num_rows") and isinstance(dataset.num_rows, dict):
        return dict(dataset.num_rows)
    return {"train": len(dataset)}


def _with_existing_rows(api: Any, dataset: Any, opts: PushOptions, repo: str) -> Any:
    """--append: the rows already in the repo, then the new ones, split by split. Refused
    (PushError, nothing pushed) when the repo's splits or columns differ from the export's:
    a push would replace the splits it does not name, or leave shards no loader can read."""
    from datasets import DatasetDict, concatenate_datasets, load_dataset

    files = api.list_repo_files(repo, repo_type="dataset", revision=opts.revision)
    if not any(f.endswith(".parquet") for f in files):
        return dataset
    existing = load_dataset(repo, revision=opts.revision, token=resolve_token(opts.token_value()))
    new = dataset if isinstance(dataset, DatasetDict) else DatasetDict({"train": dataset})
    old = existing if isinstance(existing, DatasetDict) else DatasetDict({"train": existing})
    if set(old) != set(new):
        raise PushError(f"--append: {repo} has the splits {', '.join(sorted(old))}, this export "
                        f"{', '.join(sorted(new))}; push without --append to replace them, or to another repo")
    for name, split in new.items():
        if old[name].features != split.features:
            raise PushError(f"--append: the rows in {repo} ({name}) have other columns than this export's "
                            "(another --schema or metadata option?); push without --append to replace them")
    merged = DatasetDict({name: concatenate_datasets([old[name], split]) for name, split in new.items()})
    return merged if isinstance(dataset, DatasetDict) else merged["train"]
