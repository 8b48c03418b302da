"""What an outside tester found at the front doors (tests/attack notes in the issue's closing
note), each now one clear line and the right exit code, before any work."""

from __future__ import annotations

import pytest
import yaml

from conftest import ROOT, SAMPLE_JOB, read_jsonl, run_cli
from harbor_hooks import ExportSettings, SettingsError, export_traces  # noqa: F401 - importable


def refused(proc, *needles: str, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Exported" not in proc.stdout, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("args,env,needle", [
    (["--redact-patterns", ""], {}, "matches the empty string"),
    (["--redact-patterns", "x*"], {}, "matches the empty string"),
    (["--repo", "-org/x", "--push"], {"HF_TOKEN": "x"}, "invalid option 'repo'"),
    (["--repo", "org/a..b", "--push"], {"HF_TOKEN": "x"}, "invalid option 'repo'"),
    (["--max-shard-size", "lots"], {}, "invalid option 'max_shard_size'"),
    (["--revision="], {}, "invalid option 'revision'"),
    (["--workers", str(10**30)], {}, "invalid option 'workers'"),
    (["--log-format", "xml"], {}, "invalid option 'log_format'"),
    (["--min-reward", "nan"], {}, "invalid option 'min_reward'"),
    (["-p", str(SAMPLE_JOB)], {}, "not both"),
    ([], {"HARBOR_HOOKS_TASK": "[not json"}, "not a JSON list"),
])
def test_bad_values_are_one_line_before_any_work(args, env, needle, tmp_path):
    refused(run_cli("traces", "export", "--sample", "-o", str(tmp_path / "o.jsonl"), *args, env=env), needle)
    assert not (tmp_path / "o.jsonl").exists()


def test_a_list_option_takes_one_value_from_env_or_yaml(tmp_path):
    out = tmp_path / "o.jsonl"
    run_cli("traces", "export", "--sample", "-o", str(out), env={"HARBOR_HOOKS_TASK": "fix-*"}, check=True)
    assert {r["task"] for r in read_jsonl(out)} == {"fix-git"}


def test_yaml_booleans_are_no_numbers_and_options_are_given_once(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({"export": {"traces": True, "max_turns": True}}))
    refused(run_cli("run", "-c", str(config), "--job-dir", str(SAMPLE_JOB)), "expected a number")
    config.write_text(yaml.safe_dump({"export": {"traces": True}, "hooks": {"episodes": "bogus"}}))
    refused(run_cli("run", "-c", str(config), "--job-dir", str(SAMPLE_JOB)), "keep one")
    with pytest.raises(SettingsError, match="given twice"):
        export_traces(str(SAMPLE_JOB), filter="success", success_filter="failure")
    with pytest.raises(SettingsError, match="expected a number"):
        export_traces(str(SAMPLE_JOB), max_turns=True)


def test_run_says_when_export_options_export_nothing(tmp_path):
    proc = run_cli("run", "--job-dir", str(SAMPLE_JOB), "--export-output", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 0 and "no --export-traces" in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_stats_and_push_refuse_before_any_work(tmp_path):
    refused(run_cli("traces", "stats", str(tmp_path / "nope")), "no such directory")
    refused(run_cli("traces", "push", str(tmp_path / "nope.parquet"), "--repo", "me/x",
                    env={"HF_TOKEN": "x"}), "no such export")
    bad = tmp_path / "rows.csv"
    bad.write_text("a,b\n")
    refused(run_cli("traces", "push", str(bad), "--repo", "me/x", env={"HF_TOKEN": "x"}), "not an export")
    home = {"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf"), "HUGGINGFACE_TOKEN": ""}
    refused(run_cli("traces", "push", str(bad), "--repo", "me/x", env=home), "no Hugging Face token")


def test_api_errors_are_the_documented_ones(tmp_path):
    from harbor_hooks.errors import ExportFailed

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportFailed, match="file"):
        export_traces(str(SAMPLE_JOB), output=str(blocker / "out.parquet"))
    with pytest.raises(TypeError):
        export_traces(str(SAMPLE_JOB), log_format="json")  # a service option, not an export's


def test_help_is_plain_text_with_defaults():
    proc = run_cli("traces", "export", "--help")
    assert "[image:" in proc.stdout and "[default: all]" in proc.stdout and "INTEGER" in proc.stdout


def test_a_plugin_that_fails_to_load_does_not_stop_the_others(tmp_path):
    """Two entry points in the harbor_hooks group, the first broken: the second still loads."""
    site = tmp_path / "site"
    dist = site / "twoplugins-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: twoplugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[harbor_hooks]\na-broken = no_such_module_here:plugin\n"
                                           "b-healthy = healthy_plugin:plugin\n")
    (site / "healthy_plugin.py").write_text(
        "from harbor_hooks import hookimpl\n\nclass P:\n    @hookimpl\n    def on_job_complete(self, job_dir, settings):\n"
        "        pass\n\nplugin = P()\n")
    proc = run_cli("plugins", env={"PYTHONPATH": f"{site}:{ROOT}"})
    assert proc.returncode == 0, proc.stderr
    assert "b-healthy" in proc.stdout and "plugin failed to load" in proc.stderr


def test_summary_keeps_what_a_reason_says():
    """Grouping alike reasons leaves out the data they quote (names, counts), not "UTF-8"."""
    from harbor_hooks.report import ExportReport

    report = ExportReport()
    report.skip("file", "a/x.json", "invalid UTF-8 in a name (step 12)")
    report.skip("file", "b/y.json", "invalid UTF-8 in a name (step 7)")
    assert "  2 x file: invalid UTF-8 in a name" in report.summary_lines()


def test_bidi_and_separators_in_names_are_escaped():
    from harbor_hooks.report import printable

    assert printable("t\u202eab\u2028x\u2066y") == "t\\u202eab\\u2028x\\u2066y"
