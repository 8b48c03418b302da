"""One declaration per option: every field of the option models reaches every front door under
one name, and a bad value gets the same message at each of them."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path

import pytest
import typer.main
import yaml

from conftest import ROOT, SAMPLE_JOB, run_cli
from harbor_hooks import export_traces
from harbor_hooks.cli import app
from harbor_hooks.errors import SettingsError
from harbor_hooks.hub.card import CardInfo, card_text
from harbor_hooks.options import ExportOptions, OutputOptions, PushOptions, option_of
from harbor_hooks.settings import HooksSettings, load_settings


def command_flags(*path: str) -> set[str]:
    """Every flag name of a CLI command, read from the click command typer builds."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def flag(name: str, prefix: str = "") -> str:
    return f"--{prefix}{name.replace('_', '-')}"


def sample_value(field) -> object:
    """A valid value of the field that is not its default, as text a flag or env would carry."""
    annotation = field.annotation
    args = typing.get_args(annotation)
    if annotation is bool:
        return not field.default
    if typing.get_origin(annotation) is typing.Literal:
        return next(a for a in args if a != field.default)
    if typing.get_origin(annotation) is list:
        return ["x+"]
    if int in args or annotation is int:
        return 3
    if float in args or annotation is float:
        return 0.5
    if field.json_schema_extra is None and field.metadata and any("pattern" in repr(m) for m in field.metadata):
        return "250MB"  # max_shard_size
    if "OTLP" in str(field.description):
        return "http://127.0.0.1:4318"  # --endpoint: an http(s) URL
    if "folder" in str(field.description):
        return str(ROOT / "tests")  # --tokenizer: an existing folder
    if "file" in str(field.description) and field.annotation == Path | None:
        return str(ROOT / "README.md")  # --decontaminate: an existing file
    return "org/name" if "repo" in str(field.description).lower() else "value"


# options that need others beside them (set alike at every front door)
COMPANIONS = {"tokenizer": {"schema": "messages"}, "format": {"endpoint": "http://127.0.0.1:4318"},
              "max_tokens": {"schema": "messages", "tokenizer": str(ROOT / "tests")}}


EXPORT = list(ExportOptions.model_fields.items())
ALL = [*EXPORT, *OutputOptions.model_fields.items(), *PushOptions.model_fields.items()]


@pytest.mark.parametrize("name,field", EXPORT, ids=[n for n, _ in EXPORT])
def test_every_export_option_reaches_every_front_door(name, field):
    opt = option_of(field)
    assert flag(name) in command_flags("traces", "export") or opt.flag in command_flags("traces", "export")
    assert flag(name, "export-") in command_flags("run")
    if "sweeps" in opt.commands:
        assert flag(name, "export-") in command_flags("sweeps", "run")
    assert name in HooksSettings.model_fields  # a YAML key and HARBOR_HOOKS_<NAME>
    assert name in inspect.signature(export_traces).parameters
    assert f"- `{name}`:" in card_text_of_default_export()


def card_text_of_default_export() -> str:
    from datasets import Dataset

    from harbor_hooks.formats import row_schema
    import pyarrow as pa

    dataset = Dataset(pa.Table.from_batches([], schema=row_schema(ExportOptions())))
    _, body = card_text(dataset, PushOptions(), "org/name", None,
                        CardInfo(options=ExportOptions().model_dump(mode="json")))
    return body


@pytest.mark.parametrize("name,field", ALL, ids=[n for n, _ in ALL])
def test_yaml_env_and_flag_set_the_same_field(name, field, monkeypatch):
    if name == "token":
        return  # a secret: covered by the push tests
    value = sample_value(field)
    extra = COMPANIONS.get(name, {})
    assert getattr(load_settings({name: value, **extra}), name) == \
        getattr(load_settings(None, **{name: value, **extra}), name)
    env = json.dumps(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else str(value)
    monkeypatch.setenv(f"HARBOR_HOOKS_{name.upper()}", env)
    for key, other in extra.items():
        monkeypatch.setenv(f"HARBOR_HOOKS_{key.upper()}", other)
    from_env = getattr(load_settings(None), name)
    monkeypatch.delenv(f"HARBOR_HOOKS_{name.upper()}")
    for key in extra:
        monkeypatch.delenv(f"HARBOR_HOOKS_{key.upper()}")
    assert from_env == getattr(load_settings({name: value, **extra}), name) != field.default


def test_aliases_reach_the_canonical_name(monkeypatch):
    """Harbor's keyword names and the older setting names stay as aliases."""
    assert load_settings({"agent_filter": ["a*"]}).agent == ["a*"]
    assert load_settings(None, success_filter="success").filter == "success"
    monkeypatch.setenv("HARBOR_HOOKS_TASK_FILTER", '["swe-*"]')
    assert load_settings(None).task == ["swe-*"]
    options = ExportOptions(include_instruction=True, to_sharegpt=True, export_subagents=False)
    assert (options.instruction_metadata, options.sharegpt, options.subagents) == (True, True, "none")


BAD = [("schema", "bogus", "invalid option 'schema': Input should be 'harbor', 'messages', 'llamafactory' or 'prompt-completion', got 'bogus'"),
       ("max_turns", -1, "invalid option 'max_turns': Input should be greater than or equal to 0, got '-1'"),
       ("redact_patterns", ["("], "invalid option 'redact_patterns': '(' is not a regular expression")]


@pytest.mark.parametrize("name,value,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_gets_one_message_at_every_front_door(name, value, message, tmp_path):
    def check(proc, door):
        assert proc.returncode == 2, (door, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (door, proc.stderr)
        assert lines[0].startswith(f"error: {message}"), (door, lines[0])
        return lines[0]

    as_flag = [flag(name), value[0]] if isinstance(value, list) else [flag(name), str(value)]
    by_flag = check(run_cli("traces", "export", "--sample", *as_flag), "flag")
    env_value = json.dumps(value) if isinstance(value, list) else str(value)
    by_env = check(run_cli("traces", "export", "--sample", env={f"HARBOR_HOOKS_{name.upper()}": env_value}), "env")
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({"job_name": "j", "export": {"traces": True, name: value}}))
    by_yaml = check(run_cli("run", "-c", str(config), "--job-dir", str(SAMPLE_JOB)), "yaml")
    by_run_flag = check(run_cli("run", "--job-dir", str(SAMPLE_JOB), "--export-traces",
                                flag(name, "export-"), as_flag[1]), "run flag")
    with pytest.raises(SettingsError) as api:
        export_traces(str(SAMPLE_JOB), **{name: value})
    assert by_flag == by_env == by_yaml == by_run_flag == f"error: {api.value}"


def test_push_without_a_repo_refuses_before_any_work(tmp_path, monkeypatch):
    import harbor_hooks.publish as publish

    def no_work(*args, **kwargs):
        raise AssertionError("the export ran")
    monkeypatch.setattr(publish, "run_export", no_work)
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    with pytest.raises(SettingsError, match="a push needs a repo"):
        export_traces(str(SAMPLE_JOB), push=True)
    proc = run_cli("traces", "export", "--sample", "--push", env={"HF_TOKEN": "hf_x"})
    assert proc.returncode == 2 and "a push needs a repo" in proc.stderr and "Exported" not in proc.stdout
