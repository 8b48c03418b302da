"""The secret rules: what redaction looks for, after the rule sets of gitleaks, Yelp's
detect-secrets and trufflehog (their common kinds, written anew for one fast scan).

A rule is (kind, triggers, pattern). The triggers are literals, one of which every match
contains: one scan for all of them tells which rules to run. A pattern's group `s` (or
`s2`) is the secret; without one, the whole match is. What surrounds the secret (a key
name, `Bearer `, a URL's user) is kept.
"""

from __future__ import annotations

# a value that is no secret: a reference, a placeholder, a mask, a number, a literal
_NOT_A_VALUE = (r"(?!\$[{(A-Za-z_]|[<%?]|\{\{|\*{3}|x{6}|X{6}|\.{3}|\[REDACTED|\d+(?:\.\d+)?(?=[\s\"',;}\]]|$)"
                r"|(?i:your[_-]|changeme|example|redacted|none\b|null\b|true\b|false\b|undefined\b"
                r"|os\.environ|process\.env|env\[|getenv|secrets\.|await\b))")
# key = value, key: value, "key": "value", key := value, the same JSON-escaped; the value
# quoted (all of it up to the quote) or bare (not a call: `api_key = get_api_key()`)
_ASSIGNED = (r"[A-Za-z0-9_.-]*(?:\\*[\"'])?\]?[ \t]*(?:=>|:=|=|:)[ \t]*"
             r"(?:\\*[\"'](?P<s>" + _NOT_A_VALUE + r"[^\"'\\\n]{8,}+)(?=\\*[\"'])"
             r"|(?P<s2>" + _NOT_A_VALUE + r"[^\s\"'`,;(){}\[\]<>\\]{8,}+)(?![(\w]))")


def _key_names() -> list[tuple[tuple[str, ...], str]]:
    """(triggers, pattern of the names they start) for the names of secrets: each pattern leads
    with its trigger, a literal (re finds it in C), and checks what stands before it after.
    Written in lower, Capitalized or UPPER case; `key` only after a word saying which key."""
    names = []
    for core, before, after in (("assw", "p", "(?:ord|d)"), ("assphrase", "p", ""), ("ecret", "s", ""),
                                ("oken", "t", ""), ("redential", "c", "s?")):
        for case in (str.lower, str.upper):
            lead = case(before)
            names.append(((case(core),), f"{case(core)}(?<=[{lead}{lead.upper()}]{case(core)}){case(after)}"))
    qualifiers = ("api", "app", "access", "private", "server", "license", "account", "auth", "master",
                  "encryption", "signing")
    # api_key, api-key, apikey; apiKey, ApiKey, Api_Key; API_KEY, APIKEY
    forms = {"key": ([q + sep for q in qualifiers for sep in ("_", "-")] + ["api"], ("_key", "-key", "apikey")),
             "Key": ([q + sep for w in qualifiers for q in (w, w.capitalize()) for sep in ("_", "-", "")], ("Key",)),
             "KEY": ([q.upper() + sep for q in qualifiers for sep in ("_", "-", "")], ("KEY",))}
    for key, (befores, triggers) in forms.items():
        behind = "|".join(f"(?<={before}{key})" for before in befores)
        names.append((triggers, f"{key}(?:{behind})"))
    return names


PATTERNS: list[tuple[str, tuple[str, ...], str]] = [
    ("private_key", ("PRIVATE KEY",),
     r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
     r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"),
    ("age", ("AGE-SECRET-KEY-1",), r"AGE-SECRET-KEY-1[0-9A-Z]{50,}"),
    ("anthropic", ("sk-ant-",), r"(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9]{2,8}-[A-Za-z0-9_\-]{20,}"),
    ("openai", ("sk-",), r"(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-|None-|or-v1-)?[A-Za-z0-9_\-]{20,}"),
    ("huggingface", ("hf_",), r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}"),
    ("groq", ("gsk_",), r"(?<![A-Za-z0-9])gsk_[A-Za-z0-9]{40,}"),
    ("replicate", ("r8_",), r"(?<![A-Za-z0-9])r8_[A-Za-z0-9_-]{30,}"),
    ("perplexity", ("pplx-",), r"(?<![A-Za-z0-9])pplx-[A-Za-z0-9]{40,}"),
    ("xai", ("xai-",), r"(?<![A-Za-z0-9])xai-[A-Za-z0-9_]{60,}"),
    ("langsmith", ("lsv2_",), r"(?<![A-Za-z0-9])lsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10}"),
    ("google", ("AIza", "GOCSPX-", "ya29.", "1//0"),
     r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_\-]{35}|(?<![A-Za-z0-9])GOCSPX-[A-Za-z0-9_-]{20,}|(?<![A-Za-z0-9])ya29\.[0-9A-Za-z_-]{20,}|(?<![A-Za-z0-9])1//0[0-9A-Za-z_-]{40,}"),
    ("firebase", (":APA91b",), r":APA91b[A-Za-z0-9_-]{100,}"),
    ("aws_access_key", ("AKIA", "ASIA", "ABIA", "ACCA"), r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    ("aws_session_token", ("IQoJb3JpZ2lu",), r"IQoJb3JpZ2lu[A-Za-z0-9+/=]{50,}"),
    ("github", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})"),
    ("gitlab", ("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "gloas-", "glsoat-", "glft-", "glimt-", "glagent-"),
     r"(?<![A-Za-z0-9])gl(?:pat|dt|rt|ptt|cbt|oas|soat|ft|imt|agent)-[A-Za-z0-9_-]{20,}"),
    ("slack", ("xoxa-", "xoxb-", "xoxo-", "xoxp-", "xoxr-", "xoxs-", "xapp-", "hooks.slack.com/"),
     r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9\-]{10,}|(?<![A-Za-z0-9])xapp-\d-[A-Za-z0-9-]{10,}"
     r"|hooks\.slack\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/(?P<s>[A-Za-z0-9]{16,})"),
    ("stripe", ("k_live_", "k_test_", "whsec_"), r"(?<![A-Za-z0-9])[sr]k_(?:live|test)_[A-Za-z0-9]{20,}|(?<![A-Za-z0-9])whsec_[A-Za-z0-9+/=]{24,}"),
    ("twilio", ("SK",), r"(?<![A-Za-z0-9])SK[0-9a-f]{32}\b"),
    ("sendgrid", ("SG.",), r"(?<![A-Za-z0-9])SG\.[\w-]{16,32}\.[\w-]{16,64}"),
    ("mailgun", ("key-",), r"(?<![A-Za-z0-9])key-[0-9a-f]{32}\b"),
    ("npm", ("npm_",), r"(?<![A-Za-z0-9])npm_[A-Za-z0-9]{36}\b"),
    ("pypi", ("pypi-AgE",), r"pypi-AgE[A-Za-z0-9_-]{50,}"),
    ("docker", ("dckr_pat_",), r"(?<![A-Za-z0-9])dckr_pat_[A-Za-z0-9_-]{20,}"),
    ("artifactory", ("AKCp",), r"(?<![A-Za-z0-9])AKCp[A-Za-z0-9]{60,}"),
    ("digitalocean", ("_v1_",), r"(?<![A-Za-z0-9])do[opr]_v1_[a-f0-9]{64}"),
    ("heroku", ("HRKU-",), r"(?<![A-Za-z0-9])HRKU-[A-Za-z0-9_-]{40,}"),
    ("shopify", ("shpat_", "shpca_", "shppa_", "shpss_"), r"(?<![A-Za-z0-9])shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ("atlassian", ("ATATT3",), r"(?<![A-Za-z0-9])ATATT3[A-Za-z0-9_=-]{100,}"),
    ("linear", ("lin_api_",), r"(?<![A-Za-z0-9])lin_api_[A-Za-z0-9]{40}"),
    ("notion", ("secret_", "ntn_"), r"(?<![A-Za-z0-9])secret_[A-Za-z0-9]{43}\b|(?<![A-Za-z0-9])ntn_[A-Za-z0-9]{40,}"),
    ("discord", ("/api/webhooks/",), r"/api/webhooks/\d+/(?P<s>[\w-]{40,})"),
    ("telegram", (":AA",), r"(?<!\d)\d{6,12}:(?P<s>AA[\w-]{30,})"),
    ("databricks", ("dapi",), r"(?<![A-Za-z0-9])dapi[a-f0-9]{32}(?:-\d)?\b"),
    ("doppler", ("dp.",), r"(?<![A-Za-z0-9])dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}"),
    ("vault", ("hvs.", "hvb."), r"(?<![A-Za-z0-9])hv[sb]\.[\w-]{90,}"),
    ("pulumi", ("pul-",), r"(?<![A-Za-z0-9])pul-[a-f0-9]{40}\b"),
    ("grafana", ("glc_", "glsa_"), r"(?<![A-Za-z0-9])glc_[A-Za-z0-9+/]{32,}={0,2}|(?<![A-Za-z0-9])glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"),
    ("sentry", ("sntryu_", "sntrys_", "://"), r"(?<![A-Za-z0-9])sntry[us]_[A-Za-z0-9+/=_]{64,}|://(?P<s>[0-9a-f]{32})@"),
    ("newrelic", ("NRAK-",), r"(?<![A-Za-z0-9])NRAK-[A-Z0-9]{27}"),
    ("supabase", ("sbp_",), r"(?<![A-Za-z0-9])sbp_[a-f0-9]{40}"),
    ("tailscale", ("tskey-",), r"(?<![A-Za-z0-9])tskey-[a-z]+-[A-Za-z0-9-]{20,}"),
    ("terraform", (".atlasv1.",), r"\.atlasv1\.[A-Za-z0-9_=-]{60,}"),
    ("postman", ("PMAK-",), r"(?<![A-Za-z0-9])PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),
    # as headers write them (lowercase "bearer" is mostly a token_type value)
    ("bearer", ("Bearer", "BEARER"), r"\b(?:Bearer|BEARER)\s+(?P<s>[A-Za-z0-9._~+/=\-]{8,})"),
    ("basic_auth", ("Basic", "BASIC"), r"\b(?:Basic|BASIC)\s+(?P<s>[A-Za-z0-9+/]{8,}={0,2})"),
    ("jwt", ("eyJ",), r"(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    ("url_credentials", ("://",), r"://[^\s:/@'\"]*:(?P<s>[^\s@/'\"]{3,})@"),
    ("azure_sas", ("://",), r"://\S*?[?&]sig=(?P<s>[A-Za-z0-9%+/=]{16,})"),
    ("cli_credentials", ("-u ", "--user "),
     r"(?:^|\s)(?:-u|--user) +[\"']?[^\s:'\"]+:(?P<s>[^\s'\"@]{6,})"),
    ("cli_credentials", ("-p",),
     r"\b(?:sshpass|login)\b[^\n]*? -p[ \t]*[\"']?(?P<s>[^\s\"']{6,})"
     r"|\b(?:mysql|mysqldump|mariadb)\b[^\n]*? -p(?P<s2>[^\s\"']{6,})"),
    ("netrc", ("assword",), r"\blogin +\S+ +password +(?P<s>\S{6,})"),
    ("cli_credentials", ("-password", "-passwd", "-token", "-secret", "-api-key", "-apikey", "-auth-key", "-authkey"),
     r"--(?:[a-z]+-)*(?:password|passwd|token|secret|api-?key|auth-?key)[= ][ \t]*[\"']?(?P<s>[^\s\"']{8,})"),
    ("docker_auth", ('_auth"', '"auth"'), r'"auth"\s*:\s*"(?P<s>[A-Za-z0-9+/=]{12,})"'),
    # NAME_KEY=value, NAME_TOKEN: value, "NAME_SECRET": "value" (env-style names)
    ("env_secret", ("_KEY", "_TOKEN", "_SECRET", "_PASS"),
     r"_(?:KEY|TOKEN|SECRET|PASS(?:WORD|WD)?)(?:_[A-Z0-9]+)*" + _ASSIGNED),
]
# key = value for a key that names a secret (PGPASSWORD, client_secret, X-Api-Key, apiKey)
PATTERNS += [("secret_assignment", triggers, name + _ASSIGNED) for triggers, name in _key_names()]
# a JSON object key naming a secret (ending in the secret's name): its string value is one
# ({"env": {"DB_SECRET": "..."}}); not {"token_type": "Bearer"}
SECRET_NAME = r"(?i:[A-Za-z0-9_.-]*(?:passw(?:ord|d)|passphrase|secret|token|credentials?|api[_-]?key|private[_-]?key|access[_-]?key)|auth)"
SECRET_VALUE = _NOT_A_VALUE + r".{8,}"
