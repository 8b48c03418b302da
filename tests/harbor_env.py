"""A Python 3.12 venv with Harbor 0.24.0 and this checkout, for tests and benchmarks that drive Harbor.

Harbor needs Python >= 3.12 while this project (and its test suite) runs on 3.11, so
code that talks to Harbor runs in a subprocess with the venv's interpreter:

    from harbor_env import harbor_python, harbor_unavailable_reason
    python = harbor_python()          # Path to <venv>/bin/python, or None
    if python is None:
        print("skipped:", harbor_unavailable_reason())

The venv lives at $HARBOR_HOOKS_HARBOR_VENV, by default
~/.cache/harbor-hooks/harbor-0.24.0-py312. It is created on first use (a couple of
minutes: `python3.12 -m venv`, then one `pip install harbor==0.24.0 datasets -e ROOT`)
and reused afterwards: a ready venv costs one short interpreter start (harbor's
version, where `harbor_hooks` imports from, our `harbor.plugins` entry point) plus a
stamp comparison (pyproject.toml's hash). When the checkout moved, pyproject.toml
changed or the check fails, `pip install -e` runs again. Creation is serialised with
a file lock, so parallel test workers and a benchmark can share the venv.

Standard library only (no pytest), importable from 3.11 and 3.12.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

HARBOR_VERSION = "0.24.0"
PYTHON_VERSION = "3.12"
ENV_VAR = "HARBOR_HOOKS_HARBOR_VENV"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = Path.home() / ".cache" / "harbor-hooks" / f"harbor-{HARBOR_VERSION}-py312"
STAMP_NAME = ".harbor-hooks-stamp.json"
PIP_TIMEOUT = 1800  # seconds, for one `pip install`

# the probe run by the venv's python: versions and origins, without importing harbor itself
_PROBE = r"""
import importlib.metadata as md, importlib.util, json, sys
out = {"python": list(sys.version_info[:2])}
for dist in ("harbor", "datasets", "harbor-hooks"):
    try:
        out[dist] = md.version(dist)
    except md.PackageNotFoundError:
        out[dist] = None
spec = importlib.util.find_spec("harbor_hooks")
out["harbor_hooks"] = spec.origin if spec else None
out["plugins"] = {ep.name: ep.value for ep in md.entry_points(group="harbor.plugins")}
print(json.dumps(out))
"""

_cache: dict[Path, tuple[Path | None, str | None]] = {}


def venv_dir() -> Path:
    """Where the venv is (or will be): $HARBOR_HOOKS_HARBOR_VENV, else the default."""
    override = os.environ.get(ENV_VAR, "").strip()
    return Path(override).expanduser() if override else DEFAULT_VENV


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _clean_env() -> dict[str, str]:
    """The environment for the venv's interpreter: nothing that redirects imports."""
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONNOUSERSITE", "__PYVENV_LAUNCHER__"):
        env.pop(key, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else _clean_env())


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        proc = _run([python, "-c", "import sys; print(*sys.version_info[:2])"], timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        major, minor = proc.stdout.split()
        return int(major), int(minor)
    except ValueError:
        return None


def find_python312() -> tuple[str | None, str]:
    """A Python 3.12 interpreter: pyenv's newest 3.12.x, else python3.12 on PATH; else why not."""
    tried = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            root = _run([pyenv, "root"], timeout=60).stdout.strip()
            bare = _run([pyenv, "versions", "--bare"], timeout=60).stdout.split()
        except (OSError, subprocess.SubprocessError) as exc:
            root, bare = "", []
            tried.append(f"pyenv failed ({exc})")
        versions = [v for v in bare if v.startswith(PYTHON_VERSION + ".") and v.replace(".", "").isdigit()]
        versions.sort(key=lambda v: [int(p) for p in v.split(".")])
        for version in reversed(versions):
            candidate = Path(root) / "versions" / version / "bin" / f"python{PYTHON_VERSION}"
            if _version_of(str(candidate)) == (3, 12):
                return str(candidate), ""
        tried.append(f"pyenv has no {PYTHON_VERSION}.x" if not versions else
                     f"pyenv's {', '.join(versions)} did not run")
    else:
        tried.append("no pyenv")
    on_path = shutil.which(f"python{PYTHON_VERSION}")
    if on_path and _version_of(on_path) == (3, 12):
        return on_path, ""
    tried.append(f"no working python{PYTHON_VERSION} on PATH")
    return None, f"Python {PYTHON_VERSION} is unavailable ({'; '.join(tried)})"


def _pyproject_hash() -> str:
    try:
        return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    except OSError:
        return ""


def _wanted_stamp() -> dict[str, str]:
    return {"harbor": HARBOR_VERSION, "root": str(ROOT), "pyproject": _pyproject_hash()}


def _declared_harbor_plugins() -> dict[str, str]:
    """pyproject.toml's [project.entry-points."harbor.plugins"] (empty when unreadable)."""
    try:
        import tomllib
        data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    except Exception:
        return {}
    group = data.get("project", {}).get("entry-points", {}).get("harbor.plugins", {})
    return {str(k): str(v) for k, v in group.items()}


def probe(python: Path) -> tuple[dict | None, str]:
    """What the venv holds (see _PROBE), or None and why."""
    try:
        proc = _run([str(python), "-c", _PROBE], timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{python} does not run ({exc})"
    if proc.returncode != 0:
        return None, f"{python} failed: {proc.stderr.strip()[-500:]}"
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), ""
    except (ValueError, IndexError):
        return None, f"{python}: unexpected probe output {proc.stdout[-300:]!r}"


def _problems(info: dict) -> list[str]:
    """Why a probed venv is not ready (empty: ready)."""
    problems = []
    if tuple(info.get("python") or ()) < (3, 12):
        problems.append(f"python {info.get('python')} < 3.12")
    if info.get("harbor") != HARBOR_VERSION:
        problems.append(f"harbor {info.get('harbor')} != {HARBOR_VERSION}")
    if not info.get("datasets"):
        problems.append("datasets missing")
    origin = info.get("harbor_hooks")
    expected_pkg = (ROOT / "harbor_hooks").resolve()
    if not origin or Path(origin).resolve().parent != expected_pkg:
        problems.append(f"harbor_hooks imports from {origin}, not {expected_pkg}")
    for name, value in _declared_harbor_plugins().items():
        if info.get("plugins", {}).get(name) != value:
            problems.append(f"entry point harbor.plugins:{name} is not installed")
    return problems


def _read_stamp(venv: Path) -> dict:
    try:
        return json.loads((venv / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}


@contextmanager
def _locked(venv: Path):
    """Serialise creation/installation across processes (POSIX; elsewhere, no lock)."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(venv.parent / f".{venv.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _log(message: str) -> None:
    print(f"[harbor_env] {message}", file=sys.stderr, flush=True)


def _ready(venv: Path) -> tuple[bool, str]:
    python = venv_python(venv)
    if not python.exists():
        return False, f"no venv at {venv}"
    if _read_stamp(venv) != _wanted_stamp():
        return False, "stamp differs (new venv, moved checkout or changed pyproject.toml)"
    info, why = probe(python)
    if info is None:
        return False, why
    problems = _problems(info)
    return not problems, "; ".join(problems)


def _ensure(venv: Path) -> tuple[Path | None, str | None]:
    python = venv_python(venv)
    ready, why = _ready(venv)  # fast path, no lock
    if ready:
        return python, None
    with _locked(venv):
        ready, why = _ready(venv)  # another process may have finished meanwhile
        if ready:
            return python, None
        created = False
        if python.exists() and (_version_of(str(python)) or (0, 0)) < (3, 12):
            return None, (f"{venv} holds a Python {_version_of(str(python))} venv; Harbor needs "
                          f">= 3.12 (remove it or point ${ENV_VAR} elsewhere)")
        if not python.exists():
            base, reason = find_python312()
            if base is None:
                return None, reason
            _log(f"creating {venv} with {base} (first use; takes a few minutes)")
            try:
                proc = _run([base, "-m", "venv", str(venv)], timeout=600)
            except (OSError, subprocess.SubprocessError) as exc:
                proc = None
                err = str(exc)
            else:
                err = (proc.stderr or proc.stdout).strip()[-1000:]
            if proc is None or proc.returncode != 0 or not python.exists():
                shutil.rmtree(venv, ignore_errors=True)
                return None, f"`{base} -m venv {venv}` failed: {err}"
            created = True
        else:
            _log(f"updating {venv}: {why}")
        argv = [str(python), "-m", "pip", "install", "-q", f"harbor=={HARBOR_VERSION}", "datasets",
                "-e", str(ROOT)]
        try:
            proc = _run(argv, timeout=PIP_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"`{' '.join(argv)}` failed: {exc}"
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-1500:]
            return None, f"`{' '.join(argv)}` failed (exit {proc.returncode}): {tail}"
        info, why = probe(python)
        problems = _problems(info) if info is not None else [why]
        if problems:
            return None, f"{venv} is not usable after pip install: {'; '.join(problems)}"
        (venv / STAMP_NAME).write_text(json.dumps(_wanted_stamp(), indent=2))
        if created:
            _log(f"{venv} ready")
        return python, None


def harbor_python(refresh: bool = False) -> Path | None:
    """The venv's python (created or repaired when needed); None when impossible, see
    harbor_unavailable_reason(). The answer is cached per process unless refresh."""
    venv = venv_dir()
    if refresh or venv not in _cache:
        try:
            _cache[venv] = _ensure(venv)
        except Exception as exc:  # never let setup crash a test collection or a benchmark
            _cache[venv] = (None, f"setting up {venv} failed: {type(exc).__name__}: {exc}")
    return _cache[venv][0]


def venv_env(*, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """The environment for a test's run of the venv's python or harbor: none of this
    process's import paths, test-plugin or HARBOR_HOOKS_* settings (nor the keys in drop),
    no network fetches from Harbor or LiteLLM; then extra."""
    gone = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "TESTPLUGIN_LOG", "TESTPLUGIN_FAIL", *drop)
    env = {k: v for k, v in os.environ.items() if k not in gone and not k.startswith("HARBOR_HOOKS_")}
    env.update(HARBOR_TELEMETRY="0", LITELLM_LOCAL_MODEL_COST_MAP="True", COLUMNS="200")
    env.update(extra)
    return env


def harbor_unavailable_reason() -> str | None:
    """Why the last harbor_python() call returned None (None when it returned a python)."""
    venv = venv_dir()
    if venv not in _cache:
        return None
    return _cache[venv][1]


if __name__ == "__main__":  # `python tests/harbor_env.py`: create/check the venv, print its python
    found = harbor_python()
    if found is None:
        print(f"unavailable: {harbor_unavailable_reason()}", file=sys.stderr)
        sys.exit(1)
    print(found)
