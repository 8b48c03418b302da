"""Nothing leaked: fake secrets of every kind planted everywhere a trial holds text.

The planted literals are tested, not the redactor's patterns: each must be absent from
every output (JSONL, Parquet, the messages schema, --report, stdout/stderr) in every form
it could take there (as is, JSON-escaped, escaped twice inside a tool call's JSON), and
no distinctive piece of it may survive either. The summary and the report count the
redactions per kind; --no-redact keeps them all; a user pattern redacts a custom secret.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import atif, make_trial, read_jsonl, run_cli, trial_result, write_json
from harbor_hooks import export_traces

# one fake secret of each kind: (kind, the line planted, the secret part of it)
PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
       "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
       "-----END RSA PRIVATE KEY-----")
PLANTED: list[tuple[str, str, str]] = [
    ("openai", "key sk-proj-Zq3R9vTt2XbN8mKp4LwY6sFh1JcD7gQe5UaV0oIi here",
     "sk-proj-Zq3R9vTt2XbN8mKp4LwY6sFh1JcD7gQe5UaV0oIi"),
    ("anthropic", "ANTHROPIC=sk-ant-api03-Xk2Lm9Np4Qr7St1Uv5Wx8Yz3Ab6Cd0Ef2Gh5Ij8Kl1Mn4Op-7QrAA",
     "sk-ant-api03-Xk2Lm9Np4Qr7St1Uv5Wx8Yz3Ab6Cd0Ef2Gh5Ij8Kl1Mn4Op-7QrAA"),
    ("huggingface", "hf token: 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",
     "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"),
    ("google", "maps AIzaSyD3f8Gk2Lm5Np7Qr9St1Uv3Wx5Yz7Ab9Cd", "AIzaSyD3f8Gk2Lm5Np7Qr9St1Uv3Wx5Yz7Ab9Cd"),
    ("aws_access_key", "aws_access_key_id = AKIAQ3EGUOWXZ7NRYT4B", "AKIAQ3EGUOWXZ7NRYT4B"),
    ("github", "git clone https://ghp_R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2oP@github.com/x/y",
     "ghp_R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2oP"),
    ("github", "GH=github_pat_11ABCDEFG0Zx9Yw8Vu7Ts6Rq_p5On4Ml3Kj2Ih1Gf0Ed9Cb8Az7Yx6Wv5Ut4Sr3Qp2On1Ml",
     "github_pat_11ABCDEFG0Zx9Yw8Vu7Ts6Rq_p5On4Ml3Kj2Ih1Gf0Ed9Cb8Az7Yx6Wv5Ut4Sr3Qp2On1Ml"),
    ("slack", "slack xoxb-2748301956-4827163950271-Qw3Er5Ty7Ui9Op1As3Df5Gh7J",
     "xoxb-2748301956-4827163950271-Qw3Er5Ty7Ui9Op1As3Df5Gh7J"),
    ("bearer", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlMTIzIn0.Zm9vYmFyYmF6cXV4",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlMTIzIn0.Zm9vYmFyYmF6cXV4"),
    ("basic_auth", "Authorization: Basic ZmFrZXVzZXI6ZmFrZXBhc3N3b3JkOTk=", "ZmFrZXVzZXI6ZmFrZXBhc3N3b3JkOTk="),
    ("private_key", PEM, PEM),
    ("env_secret", "export FOO_API_KEY=fooValue8472hxQ", "fooValue8472hxQ"),
    ("env_secret", "MY_TOKEN=tok-9c8b7a6d5eZZ", "tok-9c8b7a6d5eZZ"),
    ("env_secret", "DB_SECRET='s3cr3t-db-Pa55w0rd'", "s3cr3t-db-Pa55w0rd"),
    ("custom", "ticket ACME-493027 opened", "ACME-493027"),
]
CUSTOM_PATTERNS = '["ACME-[0-9]{6}"]'
TEXT = "\n".join(line for _, line, _ in PLANTED)
PER_TEXT = Counter(kind for kind, _, _ in PLANTED)
SECRETS = [secret for _, _, secret in PLANTED]
# distinctive pieces of each secret (a partial redaction must not leave them behind)
PIECES = sorted({piece for s in SECRETS for piece in
                 ([line for line in s.splitlines() if "PRIVATE KEY" not in line] if "\n" in s
                  else [s[len(s) // 3: len(s) // 3 + 10]])})


def split_parts(text: str) -> list[dict]:
    """The text as a list of text parts, each secret cut in two across a part boundary."""
    parts, rest = [], text
    for secret in SECRETS:
        at = rest.index(secret) + len(secret) // 2
        parts.append({"type": "text", "text": rest[:at]})
        rest = rest[at:]
    parts.append({"type": "text", "text": rest})
    return parts


def forms(secret: str) -> set[str]:
    """How a secret may be written in an output: as is, JSON-escaped, escaped twice."""
    once = json.dumps(secret)[1:-1]
    return {secret, once, json.dumps(once)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


def tool_arguments() -> dict:
    """Every secret inside a tool call: in a command, nested, under a secret's name, and as
    a JSON document inside a string (escaped once more when rendered)."""
    return {
        "cmd": "export OPENAI_API_KEY=" + SECRETS[0] + " && run",
        "nested": {"env": [{"line": line} for _, line, _ in PLANTED],
                   "DB_SECRET": "plain-db-value-7731", "headers": {"Authorization": PLANTED[8][1]}},
        "as_json": json.dumps({"script": TEXT, "MY_TOKEN": SECRETS[12]}),
    }


# every place a secret is planted; per place the redactor sees TEXT once, except as noted
ATIF_PLACES = ["user message (as split parts)", "agent message", "reasoning", "observation",
               "observation (as split parts)", "instruction (first user message)"]
EPISODE_PLACES = ["debug.json system", "debug.json user (as split parts)", "response.txt",
                  "prompt.txt", "response.json", "instruction (first system message)"]
VERIFIER_PLACES = ["test-stdout.txt", "test-stderr.txt"]


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    job = tmp_path_factory.mktemp("secrets") / "job"
    steps = [
        {"step_id": 1, "source": "user", "message": split_parts(TEXT)},
        {"step_id": 2, "source": "agent", "message": TEXT, "reasoning_content": TEXT,
         "tool_calls": [{"tool_call_id": "c1", "function_name": "bash", "arguments": tool_arguments()},
                        {"tool_call_id": "c2", "function_name": "bash",
                         "arguments": json.dumps(tool_arguments())}],
         "observation": {"results": [{"source_call_id": "c1", "content": TEXT},
                                     {"source_call_id": "c2", "content": split_parts(TEXT)}]}},
        {"step_id": 3, "source": "agent", "message": "done"},
    ]
    trial = make_trial(job, "atif__1", trajectory=atif(steps))
    write_json(trial / "verifier" / "reward.json", {"reward": 1.0})
    (trial / "verifier" / "test-stdout.txt").write_text(TEXT)

    trial = make_trial(job, "episodes__2", result=trial_result("episodes__2"))
    ep0 = trial / "agent" / "episode-0"
    write_json(ep0 / "debug.json", {"input": [{"role": "system", "content": TEXT},
                                              {"role": "user", "content": split_parts(TEXT)}],
                                    "api_key": SECRETS[0], "headers": {"Authorization": PLANTED[8][1]}})
    (ep0 / "response.txt").write_text(TEXT)
    ep1 = trial / "agent" / "episode-1"
    ep1.mkdir()
    (ep1 / "prompt.txt").write_text(TEXT)
    write_json(ep1 / "response.json", {"content": TEXT})
    (trial / "verifier").mkdir()
    (trial / "verifier" / "test-stderr.txt").write_text(TEXT)
    return job


def expected_counts() -> Counter:
    """What the redactor must count: TEXT once per place, plus the tool calls."""
    places = len(ATIF_PLACES) + len(EPISODE_PLACES) + len(VERIFIER_PLACES)
    counts = Counter({kind: n * places for kind, n in PER_TEXT.items()})
    # per tool call: the OPENAI_API_KEY line (openai), each planted line, DB_SECRET by its
    # name (env_secret), the bearer header, and TEXT + MY_TOKEN inside the JSON string
    per_call = Counter({"openai": 1, "env_secret": 2, "bearer": 1})
    per_call.update(PER_TEXT)
    per_call.update(PER_TEXT)
    for _ in range(2):
        counts.update(per_call)
    return counts


def export(job: Path, out: Path, *flags: str) -> tuple[str, str, dict]:
    report = out.with_suffix(".report.json")
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(out), "--report", str(report),
                   "--instruction-metadata", "--verifier-metadata", "--sharegpt", "--workers", "1",
                   "--verbose", *flags, env={"HARBOR_HOOKS_REDACT_PATTERNS": CUSTOM_PATTERNS})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr, json.loads(report.read_text())


def output_texts(path: Path) -> list[str]:
    """The output as raw bytes and as decoded text (Parquet pages are compressed)."""
    raw = path.read_bytes()
    texts = [raw.decode("utf-8", errors="replace")]
    if path.suffix == ".parquet":
        texts.append(json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False, default=str))
    else:
        texts.append(json.dumps(read_jsonl(path), ensure_ascii=False))
    return texts


def leaks(texts: list[str]) -> list[str]:
    found = []
    for secret in SECRETS:
        for form in forms(secret):
            if any(form in text for text in texts):
                found.append(secret)
    found += [piece for piece in PIECES if any(piece in text for text in texts)]
    return found


@pytest.fixture(scope="module")
def redacted(job, tmp_path_factory):
    out = tmp_path_factory.mktemp("redacted")
    results = {}
    for name, flags in [("rows.jsonl", ()), ("rows.parquet", ()),
                        ("messages.jsonl", ("--schema", "messages")),
                        ("llamafactory.jsonl", ("--schema", "llamafactory"))]:
        results[name] = (out / name, *export(job, out / name, *flags))
    return results


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.parquet", "messages.jsonl", "llamafactory.jsonl"])
def test_no_planted_secret_in_any_output(redacted, name):
    path, stdout, stderr, report = redacted[name]
    texts = output_texts(path) + [path.with_suffix(".report.json").read_text(), stdout, stderr]
    assert leaks(texts) == []
    assert report["rows"] == 4


def test_rows_keep_everything_but_the_secrets(redacted):
    rows = read_jsonl(redacted["rows.jsonl"][0])
    text = json.dumps(rows, ensure_ascii=False)
    for kind in PER_TEXT:
        assert f"[REDACTED:{kind}]" in text, kind
    assert "export FOO_API_KEY=[REDACTED:env_secret]" in text  # the name stays, the value goes
    assert "ticket [REDACTED:custom] opened" in text
    # the surrounding text is untouched
    assert "git clone https://[REDACTED:github]@github.com/x/y" in text
    assert rows[0]["verifier_output"].startswith("key [REDACTED:openai] here\n")


def test_redactions_counted_per_kind(redacted):
    expected = expected_counts()
    for name, (_, stdout, _, report) in redacted.items():
        assert report["redactions"] == dict(sorted(expected.items())), name
        total = sum(expected.values())
        line = f"redacted {total} secrets: " + ", ".join(f"{k}={v}" for k, v in sorted(expected.items()))
        assert line in stdout.splitlines(), stdout


def test_no_redact_keeps_every_secret(job, tmp_path):
    stdout, _, report = export(job, tmp_path / "plain.jsonl", "--no-redact")
    texts = output_texts(tmp_path / "plain.jsonl")
    assert set(leaks(texts)) == set(SECRETS) | set(PIECES)
    assert report["redactions"] == {} and "redacted" not in stdout


def test_user_pattern_from_settings_and_api(job, tmp_path):
    # without the user pattern the custom secret stays; with it (env, or the Python API) it goes
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(tmp_path / "a.jsonl"), "--workers", "1")
    assert "ACME-493027" in (tmp_path / "a.jsonl").read_text()
    assert "custom=" not in proc.stdout
    dataset = export_traces(str(job), workers=1, redact_patterns=["ACME-[0-9]{6}"])
    text = json.dumps(dataset.to_list(), ensure_ascii=False)
    assert "ACME-493027" not in text and "[REDACTED:custom]" in text
    bad = run_cli("traces", "export", "-p", str(job), env={"HARBOR_HOOKS_REDACT_PATTERNS": '["ACME-[0-9"]'})
    assert bad.returncode == 2 and "redact_patterns" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("texts", [
    ["plain text, no secret"],
    ["task_id sk-ant-api03-" + "a" * 30],
    ["sk-" + "b" * 25, "AKIA" + "C" * 16],
    ["AIza" + "d" * 35, "Bearer abc", "ghp_x", "xoxb", "basic", "DB_PASSWORD=1"],
    ["-----BEGIN RSA PRIVATE KEY-----", "hf_" + "e" * 30, "custom-42"],
    ["a check-in", "MEDIA", "the bearer", "github_pat_x", "ghp_" + "f" * 36],
])
def test_rules_found_as_each_rule_alone_finds_them(texts):
    """One scan for every rule's triggers finds the rules exactly as each rule's own
    triggers do alone, in the same order (a trigger holding another, "sk-ant-" and "sk-",
    calls for both)."""
    from harbor_hooks.pipeline.redact import Redactor
    from harbor_hooks.pipeline.secrets import PATTERNS

    redactor = Redactor(["custom-\\d+"])
    joined = "\0".join(texts)
    alone = [rule[0] for rule in redactor._rules if rule[1](joined)]
    assert [rule[0] for rule in redactor.rules_for(texts)] == alone
    assert len(redactor._rules) == len(PATTERNS) + 1  # the custom rule scans alone


def test_instruction_scanned_unless_a_first_turn_holds_it():
    """The instruction is the first user message: scanned there; an instruction that no
    first turn holds is scanned on its own."""
    from harbor_hooks.readers.trace import Conversation, Episode, TrialTrace, Turn
    from harbor_hooks.pipeline.redact import Redactor

    secret = "hf_" + "x" * 34
    for first in (f"  solve it {secret}\n", "a turn without it"):
        turns = [Turn("user", "user", first), Turn("assistant", "assistant", "ok")]
        trace = TrialTrace("atif", [Conversation("main", "a", "m", "p", [Episode(0, turns)])],
                           instruction=f"solve it {secret}")
        redactor = Redactor()
        redactor.trace(trace)
        assert trace.instruction == "solve it [REDACTED:huggingface]"
        assert secret not in turns[0].text


def test_openings_remembered_across_trials_never_hide_a_secret(monkeypatch):
    """A conversation's opening (system prompt, first user turn, tool definitions) is scanned
    once per process and remembered: a later trial with the same opening is still redacted
    there and in its other texts, and the memory is forgotten past its bound."""
    from harbor_hooks.pipeline import redact
    from harbor_hooks.readers.trace import Conversation, Episode, ToolCall, TrialTrace, Turn

    secret, other = "hf_" + "x" * 34, "ghp_" + "y" * 36
    system = f"you are an agent; HF token {secret}"
    tools = [{"name": "bash", "description": f"uses {other}"}]

    def trial(reply: str) -> tuple[TrialTrace, list[Turn]]:
        turns = [Turn("system", "system", system), Turn("user", "user", "clean task"),
                 Turn("assistant", "assistant", reply, tool_calls=[ToolCall("c1", "bash", {"cmd": "ls"})])]
        conversation = Conversation("main", "a", "m", "p", [Episode(0, turns)], tool_definitions=tools)
        return TrialTrace("atif", [conversation], instruction="clean task"), turns

    redactor = redact.Redactor()
    remembered = redactor._openings
    remembered.clear()
    remembered.chars = 0
    for reply in ("nothing here", f"and {other} again", "nothing here"):
        trace, turns = trial(reply)
        redactor.trace(trace)
        assert secret not in turns[0].text and "[REDACTED:huggingface]" in turns[0].text
        assert other not in json.dumps(trace.conversations[0].tool_definitions)
        assert other not in turns[2].text
    assert system in remembered and "clean task" in remembered
    assert remembered[system] and not remembered["clean task"]  # rules found, none
    monkeypatch.setattr(redact, "OPENINGS_CHARS", 100)
    assert redactor._opening_indexes("z" * 60) == frozenset()
    assert list(remembered) == ["z" * 60] and remembered.chars == 60
