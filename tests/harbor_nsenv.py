"""A docker-less Harbor environment: every command runs in a private mount namespace.

Select it with `harbor run --env harbor_nsenv:NamespaceEnvironment` (this folder on
PYTHONPATH of Harbor's venv); Harbor imports `--env module:Class` as a custom environment
(TrialEnvironmentConfig.import_path). Root only; needs util-linux `unshare` and `mount`.

What a Harbor (Docker) container looks like, and how it is imitated here:
  /app, /tests, /solution   a per-environment scratch folder (tempfile.mkdtemp) holding
                            app/, tests/, solution/, logs/, bind-mounted onto those paths
  /logs                     scratch logs/, with Harbor's host bind mounts on top
                            (trial_dir/agent -> /logs/agent, verifier/ -> /logs/verifier,
                            artifacts -> /logs/artifacts, plus any user `mounts`)
Each exec is `unshare --mount --propagation private sh -c 'mount --bind ...; cd CWD;
exec bash -c CMD'`; the rest of the file system is the host's (no chroot, no image:
the task's Dockerfile is ignored, the host's tools are the "image"). Mount points /app,
/logs, /tests and /solution are created (empty) on the host when missing: a bind mount
needs an existing target, and they stay empty on the host because every bind happens
inside the namespace. capabilities.mounted is True, like Docker on Linux: Harbor reads
agent and verifier logs straight from the trial folder.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import tempfile
from pathlib import Path

from harbor.environments.base import BaseEnvironment, ExecResult
from harbor.environments.capabilities import EnvironmentCapabilities

CONTAINER_DIRS = ("app", "logs", "tests", "solution")
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def unavailable_reason() -> str | None:
    """Why this environment cannot run here (None: it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (unshare --mount and mount --bind)"
    for tool in ("unshare", "mount", "bash"):
        if shutil.which(tool) is None:
            return f"no `{tool}` on PATH"
    return None


class NamespaceEnvironment(BaseEnvironment):
    """Harbor environment whose "container" is a private mount namespace on this host."""

    def __init__(self, *args, **kwargs):
        self._root: Path | None = None
        super().__init__(*args, **kwargs)

    @staticmethod
    def type() -> str:
        return "nsenv"

    @property
    def capabilities(self) -> EnvironmentCapabilities:
        return EnvironmentCapabilities(mounted=True)

    @classmethod
    def preflight(cls) -> None:
        reason = unavailable_reason()
        if reason:
            raise SystemExit(f"nsenv environment unavailable: {reason}")

    def _validate_definition(self):
        return  # no image to build: the task's environment/ is not used

    # --- lifecycle -------------------------------------------------------------------
    async def start(self, force_build: bool) -> None:
        self._root = Path(tempfile.mkdtemp(prefix=f"harbor-nsenv-{self.session_id[:40]}-"))
        for name in CONTAINER_DIRS:
            (self._root / name).mkdir()
            Path("/", name).mkdir(exist_ok=True)  # host mount point, stays empty
        await self._upload_environment_dir_after_start()

    async def stop(self, delete: bool):
        if self._root is not None and delete:
            shutil.rmtree(self._root, ignore_errors=True)

    # --- commands --------------------------------------------------------------------
    def _mount_script(self) -> list[str]:
        assert self._root is not None, "environment not started"
        lines = [f"mount --bind {shlex.quote(str(self._root / n))} /{n}" for n in CONTAINER_DIRS]
        for mount in self._mounts:  # Harbor's log binds (sorted: parents before children)
            if mount.get("type", "bind") != "bind":
                continue
            source, target = mount.get("source"), mount.get("target")
            if not source or not target:
                continue
            opts = "bind,ro" if mount.get("read_only") else "bind"
            lines.append(f"mkdir -p {shlex.quote(target)}")
            lines.append(f"mount -o {opts} {shlex.quote(source)} {shlex.quote(target)}")
        return lines

    def _user_prefix(self, user: str | int | None) -> str:
        user = self._resolve_user(user)
        if user in (None, "root", 0, "0"):
            return ""
        if isinstance(user, int) or str(user).isdigit():
            return f"setpriv --reuid={int(user)} --regid={int(user)} --clear-groups "
        return f"runuser -u {shlex.quote(str(user))} -- "

    async def exec(self, command: str, cwd: str | None = None, env: dict[str, str] | None = None,
                   timeout_sec: int | None = None, user: str | int | None = None) -> ExecResult:
        workdir = cwd or self.task_env_config.workdir or "/app"
        script = "set -e\n" + "\n".join(self._mount_script()) + (
            f"\ncd {shlex.quote(workdir)}\nexec {self._user_prefix(user)}bash -c {shlex.quote(command)}\n")
        proc_env = {"PATH": CONTAINER_PATH, "HOME": "/root", "LANG": "C.UTF-8",
                    **(self._merge_env(env) or {})}
        proc = await asyncio.create_subprocess_exec(
            "unshare", "--mount", "--propagation", "private", "sh", "-c", script,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=proc_env, start_new_session=True)
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=timeout_sec)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
            raise
        return ExecResult(stdout=stdout.decode(errors="replace"),
                          stderr=stderr.decode(errors="replace"), return_code=proc.returncode)

    # --- file transfer: cp inside the namespace (host paths stay visible there) --------
    async def _copy(self, source: str, target: str, directory: bool) -> None:
        q = shlex.quote
        if directory:
            cmd = f"mkdir -p {q(target)} && cp -a {q(source.rstrip('/') + '/.')} {q(target)}/"
        else:
            cmd = f"mkdir -p {q(os.path.dirname(target) or '/')} && cp -a {q(source)} {q(target)}"
        result = await self.exec(cmd, cwd="/", user="root")
        if result.return_code != 0:
            raise RuntimeError(f"nsenv copy {source} -> {target} failed: {result.stderr.strip()}")

    async def upload_file(self, source_path: Path | str, target_path: str):
        await self._copy(str(Path(source_path).resolve()), str(target_path), directory=False)

    async def upload_dir(self, source_dir: Path | str, target_dir: str):
        await self._copy(str(Path(source_dir).resolve()), str(target_dir), directory=True)

    async def download_file(self, source_path: str, target_path: Path | str):
        await self._copy(str(source_path), str(Path(target_path).absolute()), directory=False)

    async def download_dir(self, source_dir: str, target_dir: Path | str):
        await self._copy(str(source_dir), str(Path(target_dir).absolute()), directory=True)
