"""traces stats (table, plot), ATIF images (placeholder or datasets.Image), one TRL SFT step."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from conftest import SAMPLE_JOB, atif, make_trial, run_cli
from harbor_hooks import export_traces

TOOL_JOB = Path(__file__).parent / "data" / "tool-job"
TEMPLATE = Path(__file__).parent / "data" / "tool_chat_template.jinja"


def test_stats_table_contents():
    proc = run_cli("traces", "stats", str(SAMPLE_JOB), check=True)
    lines = [line for line in proc.stdout.splitlines() if "terminus-2" in line]
    cells = [[c.strip() for c in line.strip("│ ").split("│")] for line in lines]
    assert cells == [
        ["terminus-2", "gpt-4o", "fix-git", "2", "11", "50.0%", "5.5", "n/a", "n/a"],
        ["terminus-2", "openai/gpt-4o", "hello-world", "4", "24", "50.0%", "4.8", "14051", "1535"],
    ]


def test_stats_plot_writes_a_png(tmp_path):
    from PIL import Image

    png = tmp_path / "stats.png"
    run_cli("traces", "stats", str(SAMPLE_JOB), "--plot", str(png), check=True)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 600 and image.height > 200


def png_bytes(color: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def image_job(tmp_path: Path) -> Path:
    steps = [
        {"step_id": 1, "source": "user", "message": [
            {"type": "text", "text": "What is on the screen? "},
            {"type": "image", "source": {"media_type": "image/png", "path": "images/screen.png"}}]},
        {"step_id": 2, "source": "agent", "message": "A red square.",
         "observation": {"results": [{"content": [
             {"type": "image", "source": {"media_type": "image/png", "path": "images/after.png"}}]}]}},
        {"step_id": 3, "source": "agent", "message": "Now blue."},
    ]
    trial = make_trial(tmp_path / "job", "vision__1", trajectory=atif(steps))
    (trial / "agent" / "images").mkdir()
    (trial / "agent" / "images" / "screen.png").write_bytes(png_bytes("red"))
    (trial / "agent" / "images" / "after.png").write_bytes(png_bytes("blue"))
    return tmp_path / "job"


def test_images_default_placeholder_counted(image_job):
    proc = run_cli("traces", "export", "-p", str(image_job), check=True)
    assert "2 images replaced by a text placeholder" in proc.stdout
    rows = export_traces(str(image_job), workers=1).to_list()
    assert rows[0]["conversations"][0]["content"] == "What is on the screen? [image: images/screen.png]"
    assert rows[1]["conversations"][2]["content"] == "[image: images/after.png]"


def test_images_keep_as_datasets_image(image_job):
    from datasets import Image, List

    ds = export_traces(str(image_job), images="keep", schema="messages", workers=1)  # images: --media's alias
    assert ds.features["images"] == List(Image())
    first, second = ds[0]["images"], ds[1]["images"]
    assert len(first) == 1 and first[0].size == (4, 3) and first[0].getpixel((0, 0)) == (255, 0, 0)
    assert [im.getpixel((0, 0)) for im in second] == [(255, 0, 0), (0, 0, 255)]


def test_trl_sft_trainer_step_on_cpu(tmp_path):
    """The [train] extra: one SFTTrainer step on the messages schema (tools as the JSON string)."""
    pytest.importorskip("torch", reason="the [train] extra (torch==2.13.0 CPU, trl) is not installed")
    pytest.importorskip("trl", reason="the [train] extra (torch==2.13.0 CPU, trl) is not installed")
    import tokenizers
    import transformers
    from trl import SFTConfig, SFTTrainer

    dataset = export_traces(str(TOOL_JOB), schema="messages", workers=1)
    dataset = dataset.select_columns(["messages", "tools"])
    words = sorted({w for row in dataset["messages"] for m in row for w in (m["content"] or "").split()})
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "<|im_end|>", *words])}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, chat_template=TEMPLATE.read_text(), pad_token="[PAD]",
        eos_token="<|im_end|>", unk_token="[UNK]")
    config = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2,
                                      num_key_value_heads=2, max_position_embeddings=4096)
    model = transformers.LlamaForCausalLM(config)
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2,
                     report_to=[], use_cpu=True, logging_steps=1, save_strategy="no",
                     max_length=2048, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0


def test_images_keep_to_jsonl_as_base64(image_job, tmp_path):
    import base64

    out = tmp_path / "images.jsonl"
    run_cli("traces", "export", "-p", str(image_job), "--images", "keep", "-o", str(out), check=True)
    row = json.loads(out.read_text().splitlines()[0])
    assert base64.b64decode(row["images"][0]["bytes"]) == png_bytes("red")
    assert row["images"][0]["path"] == "images/screen.png"


def test_trl_assistant_only_loss_matches_our_labels(tmp_path):
    """One SFTTrainer step with assistant_only_loss=True on the new rows (arguments and
    tools as objects), with TRL's own generation-marked Qwen2.5 template: only assistant
    tokens carry loss, and they are exactly the tokens our --tokenizer labels mark."""
    pytest.importorskip("torch", reason="the [train] extra (torch==2.13.0 CPU, trl) is not installed")
    trl = pytest.importorskip("trl", reason="the [train] extra (torch==2.13.0 CPU, trl) is not installed")
    import tokenizers
    import transformers
    from trl import SFTConfig, SFTTrainer

    template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5_training.jinja").read_text()
    dataset = export_traces(str(TOOL_JOB), schema="messages", workers=1).select_columns(["messages", "tools"])
    words = sorted({w for row in dataset["messages"] for m in row for w in (m["content"] or "").split()})
    specials = ["[UNK]", "[PAD]", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate([*specials, *sorted(set(words) | {"assistant", "user", "system", "tool"})])}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, chat_template=template, pad_token="[PAD]", eos_token="<|im_end|>",
        unk_token="[UNK]", additional_special_tokens=specials[2:])
    folder = tmp_path / "tok"
    tokenizer.save_pretrained(folder)
    config = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2,
                                      num_key_value_heads=2, max_position_embeddings=8192)
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2,
                     report_to=[], use_cpu=True, save_strategy="no", max_length=8192,
                     dataloader_num_workers=0, assistant_only_loss=True)
    trainer = SFTTrainer(model=transformers.LlamaForCausalLM(config), args=args, train_dataset=dataset,
                         processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0

    ours = export_traces(str(TOOL_JOB), schema="messages", workers=1, tokenizer=str(folder))
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    for theirs, row in zip(trainer.train_dataset, ours):
        assert theirs["input_ids"] == row["input_ids"]
        masked = [t for t in theirs["labels"] if t != -100]  # TRL's labels: -100 off the assistant
        labelled = [t for t in row["labels"] if t != -100]
        assert masked == labelled and masked  # the same tokens carry loss
        assert start not in labelled  # no role header
        # every labelled token lies in an assistant turn: after "<|im_start|> assistant"
        for k, label in enumerate(row["labels"]):
            if label != -100:
                header = max(i for i in range(k) if row["input_ids"][i] == start)
                assert row["input_ids"][header + 1] == vocab["assistant"]
