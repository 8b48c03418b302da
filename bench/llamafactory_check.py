"""Check that LLaMA-Factory's own sharegpt loader reads a `--schema llamafactory` export whole.

    python bench/llamafactory_check.py EXPORT.jsonl [--template qwen] [--python /tmp/lf-venv/bin/python]

What it checks
--------------
The export is declared to LLaMA-Factory exactly as its data/README asks for a sharegpt
dataset with tools, in a temporary `dataset_info.json`:

    {"harbor_export": {"file_name": "export.jsonl", "formatting": "sharegpt",
      "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
      "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
               "assistant_tag": "gpt", "observation_tag": "observation",
               "function_tag": "function_call", "system_tag": "system"}}}

1. End to end, LLaMA-Factory's real path: `llamafactory.data.get_dataset(template, ...,
   stage="sft", tokenizer)`, which loads the file (`_load_single_dataset` -> `datasets`
   json loader), converts it (`align_dataset` -> `SharegptDatasetConverter`) and tokenizes it
   with the chat template (`SupervisedDatasetProcessor` -> `Template.encode_multiturn`,
   which renders the `tools` column and parses every `function_call` turn as JSON).
   The rows it keeps are the rows of the resulting train dataset.
2. Row by row, the same objects (`get_dataset_converter` and the SFT dataset processor) run
   on each row alone, so that every drop, warning and exception is tied to a row number.

The huggingface.co hub is not needed: the tokenizer is built here (byte-level BPE with no
merges, so any text encodes, plus the template's special tokens) and saved to a temp dir,
and `cutoff_len` is set high so that nothing is truncated.

It prints the rows in the file, the rows LLaMA-Factory kept after conversion (non-empty
`_prompt`/`_response`) and after tokenization, the rows dropped, and every warning logged
to the `llamafactory` logger or raised through Python's `warnings` while the data was
processed. Exit 0 only if no row was dropped, nothing raised and no warning was logged;
1 otherwise; 2 if LLaMA-Factory cannot be run.

Setting up the LLaMA-Factory virtualenv (kept apart from the project's environment)
-----------------------------------------------------------------------------------
Tested with llamafactory 0.9.5, transformers 5.6.0, datasets 4.0.0, torch 2.13.0+cpu:

    python3.11 -m venv /tmp/lf-venv
    /tmp/lf-venv/bin/pip install --upgrade pip
    # a CPU torch: on this workplace's machines pip finds 2.13.0+cpu among its local wheels;
    # elsewhere: pip install torch --index-url https://download.pytorch.org/whl/cpu first
    /tmp/lf-venv/bin/pip install llamafactory==0.9.5 torch==2.13.0+cpu
    # PyPI's torchvision/torchaudio Linux wheels are CUDA builds; with a CPU torch their
    # native libraries fail to load (libc10_cuda.so). The data path needs neither:
    /tmp/lf-venv/bin/pip uninstall -y torchvision
    rm -f /tmp/lf-venv/lib/python3.11/site-packages/torchaudio/lib/*.so

(On a machine with a CUDA torch from PyPI, the last two steps are unnecessary.)
If `llamafactory` is not importable by the running interpreter, this script re-executes
itself with `--python` (default: $LF_PYTHON, else /tmp/lf-venv/bin/python).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

DEFAULT_PYTHON = os.environ.get("LF_PYTHON", "/tmp/lf-venv/bin/python")
DATASET_NAME = "harbor_export"
REEXEC_MARK = "HARBOR_LF_CHECK_REEXEC"
# Tokens that chat templates use as single special tokens; the rest are encoded as bytes.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]


def dataset_info(file_name: str) -> dict:
    return {
        DATASET_NAME: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
                "observation_tag": "observation",
                "function_tag": "function_call",
                "system_tag": "system",
            },
        }
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("export", type=Path, help="a JSONL file written by `harbor-hooks traces export --schema llamafactory`")
    p.add_argument("--template", default="qwen", help="LLaMA-Factory chat template (default: qwen)")
    p.add_argument("--python", default=DEFAULT_PYTHON, help="interpreter of the LLaMA-Factory venv")
    p.add_argument("--cutoff-len", type=int, default=1_000_000, help="LLaMA-Factory cutoff_len (default: no truncation)")
    p.add_argument("--max-shown", type=int, default=400, help="characters of each warning to print (0: all)")
    return p.parse_args(argv)


def ensure_llamafactory(args: argparse.Namespace) -> None:
    """Re-execute under the LLaMA-Factory venv if llamafactory is not importable here."""
    if importlib.util.find_spec("llamafactory") is not None:
        return
    python = args.python
    if os.environ.get(REEXEC_MARK) or not Path(python).exists():
        print(
            f"llamafactory is not importable by {sys.executable}"
            + ("" if Path(python).exists() else f" and {python} does not exist")
            + f".\nSet up the venv as the docstring at the top of {__file__} says, or pass --python.",
            file=sys.stderr,
        )
        sys.exit(2)
    env = dict(os.environ, **{REEXEC_MARK: "1"})
    argv = [python, os.path.abspath(__file__), *sys.argv[1:]]
    os.execve(python, argv, env)


class Collector(logging.Handler):
    """Collects WARNING+ records of the llamafactory logger, tagged with the current row."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[tuple[str, int | None, str]] = []
        self.phase = "setup"
        self.row: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((self.phase, self.row, f"[{record.name}] {record.levelname}: {record.getMessage()}"))

    def add_warning(self, w: warnings.WarningMessage) -> None:
        msg = f"[python warning] {w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        self.records.append((self.phase, self.row, msg))


def build_tokenizer(out_dir: Path):
    """A hub-free fast tokenizer: byte-level BPE without merges (encodes any text)."""
    from tokenizers import Tokenizer, decoders, models
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.save_pretrained(str(out_dir))
    return out_dir


def short(text: str, limit: int) -> str:
    text = text.replace("\n", "\\n")
    return text if limit <= 0 or len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def run(args: argparse.Namespace) -> int:
    export = args.export.resolve()
    if not export.is_file():
        print(f"{export}: no such file", file=sys.stderr)
        return 2
    with export.open(encoding="utf-8") as f:
        n_file = sum(1 for line in f if line.strip())

    work = Path(tempfile.mkdtemp(prefix="lf-check-"))
    try:
        return check(args, export, n_file, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(args: argparse.Namespace, export: Path, n_file: int, work: Path) -> int:
    os.environ.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_CACHE=str(work / "hf-cache"),
        TOKENIZERS_PARALLELISM="false",
    )

    import datasets
    import llamafactory
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.loader import _get_dataset_processor
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments, ModelArguments
    from llamafactory.model import load_tokenizer
    from transformers import Seq2SeqTrainingArguments

    datasets.disable_progress_bar()
    datasets.logging.set_verbosity_error()

    data_dir = work / "data"
    data_dir.mkdir()
    (data_dir / "export.jsonl").symlink_to(export)
    (data_dir / "dataset_info.json").write_text(json.dumps(dataset_info("export.jsonl"), indent=2))
    tok_dir = build_tokenizer(work / "tokenizer")

    model_args = ModelArguments(model_name_or_path=str(tok_dir))
    data_args = DataArguments(
        template=args.template,
        dataset=DATASET_NAME,
        dataset_dir=str(data_dir),
        cutoff_len=args.cutoff_len,
        overwrite_cache=True,
    )
    training_args = Seq2SeqTrainingArguments(output_dir=str(work / "out"), report_to=[])
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)

    collector = Collector()
    lf_logger = logging.getLogger("llamafactory")
    lf_logger.addHandler(collector)
    # Keep LLaMA-Factory's own console output (and the example it prints) off our report.
    quiet = io.StringIO()

    def drain(caught: list[warnings.WarningMessage]) -> None:
        for w in caught:
            collector.add_warning(w)
        caught.clear()

    # 1. End to end: LLaMA-Factory's get_dataset (load -> align -> tokenize).
    collector.phase = "get_dataset"
    n_e2e: int | None = None
    e2e_error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                module = get_dataset(template, model_args, data_args, training_args, stage="sft", tokenizer=tokenizer)
            n_e2e = len(module["train_dataset"]) if "train_dataset" in module else 0
        except Exception as e:  # noqa: BLE001 - reported below
            e2e_error = f"{type(e).__name__}: {e}"
        drain(caught)

    # 2. Row by row, with the same converter and SFT processor.
    collector.phase = "per-row"
    dataset_attr = get_dataset_list([DATASET_NAME], str(data_dir))[0]
    converter = get_dataset_converter(dataset_attr.formatting, dataset_attr, data_args)
    processor = _get_dataset_processor(data_args, "sft", template, tokenizer, None)
    try:  # the rows as LLaMA-Factory's json loader types them (arrow)
        rows = list(datasets.load_dataset("json", data_files=str(export), split="train"))
        rows_how = "datasets json loader"
    except Exception as e:  # noqa: BLE001
        rows_how = f"plain json (datasets json loader failed: {type(e).__name__}: {short(str(e), 200)})"
        with export.open(encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]

    converted_ok = 0
    tokenized_ok = 0
    problems: list[tuple[int, str]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, row in enumerate(rows):
            collector.row = i
            try:
                aligned = converter(row)
            except Exception as e:  # noqa: BLE001
                problems.append((i, f"converter raised {type(e).__name__}: {e}"))
                drain(caught)
                continue
            if not aligned["_prompt"] or not aligned["_response"]:
                problems.append((i, "dropped by SharegptDatasetConverter (empty _prompt/_response)"))
                drain(caught)
                continue
            converted_ok += 1
            try:
                with contextlib.redirect_stdout(quiet):
                    out = processor.preprocess_dataset({k: [v] for k, v in aligned.items()})
            except Exception as e:  # noqa: BLE001
                problems.append((i, f"tokenization raised {type(e).__name__}: {e}"))
                drain(caught)
                continue
            if len(out["input_ids"]) != 1:
                problems.append((i, "dropped by the SFT processor"))
            elif not any(label != -100 for label in out["labels"][0]):
                problems.append((i, "kept, but no token is trained on (all labels masked)"))
                tokenized_ok += 1
            else:
                tokenized_ok += 1
            drain(caught)
        collector.row = None
    lf_logger.removeHandler(collector)

    kept = n_e2e if n_e2e is not None else tokenized_ok
    dropped = n_file - kept
    e2e_warnings = [m for phase, _, m in collector.records if phase == "get_dataset"]
    row_warnings = [(r, m) for phase, r, m in collector.records if phase == "per-row"]

    print(f"file: {export}")
    print(f"llamafactory {llamafactory.__version__}, template {args.template!r}, stage sft, rows read via {rows_how}")
    print(f"rows in file:                     {n_file}")
    print(f"rows kept after conversion:       {converted_ok}  (SharegptDatasetConverter, non-empty _prompt/_response)")
    print(f"rows kept after tokenization:     {tokenized_ok}  (row by row)")
    if e2e_error:
        print(f"get_dataset end to end:           FAILED, {short(e2e_error, args.max_shown)}")
    else:
        print(f"get_dataset end to end:           {n_e2e} rows in train_dataset")
    print(f"rows dropped:                     {dropped}" + ("  (get_dataset failed: counted row by row)" if e2e_error else ""))
    print(f"warnings logged by get_dataset:   {len(e2e_warnings)}")
    for m in e2e_warnings:
        print(f"  - {short(m, args.max_shown)}")
    if problems or row_warnings:
        print("per row:")
        by_row: dict[int, list[str]] = {}
        for r, what in problems:
            by_row.setdefault(r, []).append(what)
        for r, m in row_warnings:
            by_row.setdefault(r if r is not None else -1, []).append(m)
        for r in sorted(by_row):
            for what in by_row[r]:
                print(f"  row {r}: {short(what, args.max_shown)}")
    ok = dropped == 0 and not e2e_error and not e2e_warnings and not problems and not row_warnings
    print("OK: every row kept, no warning" if ok else "FAIL")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ensure_llamafactory(args)
    try:
        return run(args)
    except Exception:  # noqa: BLE001 - setup failure, not a finding about the data
        traceback.print_exc()
        return 2


if __name__ == "__main__":
    sys.exit(main())
