"""Numbers of an export per agent/model/task: trials, rows, success rate, turns, tokens.

Computed with Arrow from the exported columns, so the CLI table, the plot and the
dataset card all say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

STAT_COLUMNS = ["agent", "model", "task", "run_id", "trial_name", "trace_source", "success",
                "reward", "n_turns", "prompt_tokens", "completion_tokens"]


@dataclass
class GroupStats:
    agent: str
    model: str
    task: str
    trials: int
    rows: int
    successes: int
    mean_turns: float | None
    prompt_tokens: int | None
    completion_tokens: int | None

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None


def conversation_chars(table: pa.Table | pa.RecordBatch) -> pa.Array:
    """Characters of each row's conversation, whatever the schema."""
    column = "messages" if "messages" in table.column_names else "conversations"
    lists = table.column(column)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    field = "value" if "value" in [f.name for f in lists.type.value_type] else "content"
    lengths = pc.utf8_length(pc.struct_field(pc.list_flatten(lists), field)).fill_null(0)
    parents = pc.list_parent_indices(lists)
    totals = pa.table({"row": parents, "n": pc.cast(lengths, pa.int64())}).group_by("row").aggregate([("n", "sum")])
    out = [0] * len(table)
    for row, n in zip(totals.column("row").to_pylist(), totals.column("n_sum").to_pylist()):
        out[row] = n
    return pa.array(out, pa.int64())


def stat_table(batches) -> pa.Table:
    """The stats columns of exported batches, plus each row's conversation length (`chars`)."""
    parts = []
    for batch in batches:
        part = batch.select([c for c in STAT_COLUMNS if c in batch.schema.names])
        parts.append(pa.Table.from_batches([part]).append_column("chars", conversation_chars(batch)))
    return pa.concat_tables(parts) if parts else pa.table({c: [] for c in STAT_COLUMNS + ["chars"]})


def per_trial(table: pa.Table) -> pa.Table:
    """One line per trial (main rows): its group, outcome, and the longest row's turns/tokens."""
    main = table.select([c for c in STAT_COLUMNS if c in table.column_names])
    main = main.filter(pc.equal(main.column("trace_source"), "main"))
    return main.group_by(["agent", "model", "task", "run_id", "trial_name"]).aggregate([
        ("success", "max"), ("reward", "max"), ("n_turns", "max"),
        ("prompt_tokens", "max"), ("completion_tokens", "max"),
    ])


def group_stats(table: pa.Table) -> list[GroupStats]:
    if len(table) == 0:
        return []
    rows = table.select(["agent", "model", "task"]).group_by(["agent", "model", "task"]).aggregate(
        [([], "count_all")])
    row_counts = {(a, m, t): n for a, m, t, n in zip(*(rows.column(c).to_pylist() for c in
                                                         ("agent", "model", "task", "count_all")))}
    trials = per_trial(table).group_by(["agent", "model", "task"]).aggregate([
        ([], "count_all"), ("success_max", "sum"), ("n_turns_max", "mean"),
        ("prompt_tokens_max", "sum"), ("completion_tokens_max", "sum"),
    ])
    out = []
    for rec in trials.to_pylist():
        key = (rec["agent"], rec["model"], rec["task"])
        out.append(GroupStats(*key, trials=rec["count_all"], rows=row_counts.get(key, 0),
                              successes=int(rec["success_max_sum"] or 0),
                              mean_turns=rec["n_turns_max_mean"],
                              prompt_tokens=rec["prompt_tokens_max_sum"],
                              completion_tokens=rec["completion_tokens_max_sum"]))
    return sorted(out, key=lambda s: (s.agent, s.model, s.task))


def stats_markdown(groups: list[GroupStats]) -> list[str]:
    lines = ["| agent | model | task | trials | rows | success rate | mean turns | prompt tokens | completion tokens |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for g in groups:
        lines.append(f"| {g.agent} | {g.model} | {g.task} | {g.trials} | {g.rows} | "
                     f"{_pct(g.success_rate)} | {_num(g.mean_turns)} | {_num(g.prompt_tokens)} | "
                     f"{_num(g.completion_tokens)} |")
    return lines


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def rich_table(groups: list[GroupStats]) -> Any:
    """The per agent/model/task numbers as a rich Table."""
    from rich.table import Table

    table = Table(title="Harbor traces")
    for name in ("agent", "model", "task"):
        table.add_column(name)
    for name in ("trials", "rows", "success rate", "mean turns", "prompt tokens", "completion tokens"):
        table.add_column(name, justify="right")
    for g in groups:
        table.add_row(g.agent, g.model, g.task, str(g.trials), str(g.rows), _pct(g.success_rate),
                      _num(g.mean_turns), _num(g.prompt_tokens), _num(g.completion_tokens))
    return table


def plot(table: pa.Table, path: str) -> None:
    """Reward, turns and conversation length distributions, one PNG."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'harbor-hooks[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = per_trial(table)
    rewards = [r for r in trials.column("reward_max").to_pylist() if r is not None]
    turns = [t for t in trials.column("n_turns_max").to_pylist() if t is not None]
    lengths = table.column("chars").to_pylist()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, values, title, xlabel in (
        (axes[0], rewards, f"reward ({len(rewards)} trials)", "reward"),
        (axes[1], turns, "assistant turns per trial", "turns"),
        (axes[2], lengths, f"conversation length ({len(lengths)} rows)", "characters"),
    ):
        ax.hist(values or [0], bins=20, color="#4C72B0")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
    fig.tight_layout()
    from harbor_hooks.outputs.files import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
