"""Run Debian's ``janus`` binary with the generated configuration: start, readiness, logs, shutdown.

In development ``make run`` starts Janus through ``python -m video.media.janus_process serve``
(foreground, secrets kept in ``var/janus/secrets.json``); tests start it inside their private
network namespace with ``JanusProcess``. In production Janus is a separate service started
the same way by its own unit, so the app only needs its URL and API secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import msgspec

from video.media.errors import JanusError, JanusStartError, JanusTimeout, JanusUnavailable
from video.media.janus_client import JanusTransport
from video.media.janus_config import JanusConfigPaths, JanusSettings, generate_secrets, write_janus_config


def janus_binary() -> str:
    """Path of the ``janus`` executable; a clear message when the Debian package is missing."""
    found = shutil.which("janus") or ("/usr/bin/janus" if Path("/usr/bin/janus").exists() else None)
    if found is None:
        raise JanusStartError("the janus binary is missing: apt-get install janus janus-tools")
    return found


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port``, so Janus cannot end up sharing it with a stranger."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (for tests; a later bind may still race, see ``start``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class JanusProcess:
    """One Janus process owned by this Python process.

    ``netns`` runs it as ``ip netns exec NAME janus ...`` (tests with a named namespace);
    when the caller already lives in a private namespace (``unshare -n``) leave it ``None``.
    """

    def __init__(
        self,
        settings: JanusSettings,
        var_dir: Path,
        *,
        netns: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.var_dir = var_dir
        self.netns = netns
        self.extra_args = extra_args
        self.paths: JanusConfigPaths | None = None
        self.log_path = var_dir / "janus.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        host = self.settings.http_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.settings.http_port}/janus"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def argv(self) -> list[str]:
        if self.paths is None:
            raise JanusStartError("configuration not written yet")
        argv = [janus_binary(), "-F", str(self.paths.config_dir), "-C", str(self.paths.core), "-o", *self.extra_args]
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return argv

    async def start(self, *, timeout_s: float = 15.0) -> None:
        """Write the configuration, spawn Janus, and return once its API answers ``info``."""
        if self.running:
            return
        if self.netns is None and not port_is_free(self.settings.http_host, self.settings.http_port):
            raise JanusStartError(f"port {self.settings.http_port} on {self.settings.http_host} is already in use")
        await asyncio.to_thread(self._spawn)
        try:
            await self.wait_ready(timeout_s=timeout_s)
        except BaseException:
            await self.stop()
            raise

    def _spawn(self) -> None:
        """Write the configuration and start the process, its output appended to ``janus.log``."""
        self.paths = write_janus_config(self.settings, self.var_dir / "conf")
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._log.write(f"\n===== janus start {time.strftime('%Y-%m-%dT%H:%M:%S')} =====\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            self.argv(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    async def wait_ready(self, *, timeout_s: float) -> None:
        """Poll ``info`` until it answers with our server name; fail fast if Janus exits."""
        deadline = time.monotonic() + timeout_s
        async with JanusTransport(self.base_url, self.settings.api_secret, request_timeout_s=2.0) as transport:
            while True:
                if self._proc is None or self._proc.poll() is not None:
                    raise JanusStartError(f"janus exited while starting:\n{self.log_tail()}")
                try:
                    info = await transport.info()
                except (JanusUnavailable, JanusTimeout, JanusError):
                    info = None
                if info is not None:
                    if info.get("server-name") != self.settings.server_name:
                        raise JanusStartError(f"another server answers on {self.base_url}: {info.get('server-name')}")
                    if "janus.plugin.videoroom" not in info.get("plugins", {}):
                        raise JanusStartError(f"janus started without the VideoRoom plugin:\n{self.log_tail()}")
                    return
                if time.monotonic() > deadline:
                    raise JanusStartError(f"janus did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    async def stop(self, *, timeout_s: float = 10.0) -> int | None:
        """SIGINT (Janus closes its recordings cleanly), then SIGKILL after ``timeout_s``."""
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
                try:
                    code = await asyncio.to_thread(proc.wait, timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = await asyncio.to_thread(proc.wait)
            else:
                code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def __aenter__(self) -> JanusProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def load_dev_settings(var_dir: Path, **overrides: object) -> JanusSettings:
    """Development settings with secrets persisted under ``var_dir/secrets.json`` (mode 0600).

    Both ``make run``'s Janus and the app read the same file, so they agree on the API secret
    without anyone typing it; production passes secrets through its own settings instead.
    """
    var_dir.mkdir(parents=True, exist_ok=True)
    secrets_path = var_dir / "secrets.json"
    if not secrets_path.exists():
        fd = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(generate_secrets(), handle)
    stored = json.loads(secrets_path.read_text())
    fields = {"recordings_root": str(var_dir / "recordings"), **stored, **overrides}
    return msgspec.convert(fields, JanusSettings)


def main(argv: list[str] | None = None) -> int:
    """``serve``: write the configuration and run Janus in the foreground (``make run``)."""
    parser = argparse.ArgumentParser(prog="python -m video.media.janus_process")
    parser.add_argument("command", choices=["serve", "config"])
    parser.add_argument("--var-dir", type=Path, default=Path("var/janus"))
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--ice-enforce", default="", help="comma-separated interfaces/addresses for ICE")
    parser.add_argument("--interface", default=None, help="address Janus puts in its SDP")
    args = parser.parse_args(argv)
    enforce = tuple(item for item in args.ice_enforce.split(",") if item)
    settings = load_dev_settings(
        args.var_dir, http_port=args.port, ice_enforce_list=enforce, sdp_address=args.interface
    )
    paths = write_janus_config(settings, args.var_dir / "conf")
    if args.command == "config":
        sys.stdout.write(f"{paths.config_dir}\n")
        return 0
    os.execv(janus_binary(), [janus_binary(), "-F", str(paths.config_dir), "-C", str(paths.core), "-o"])  # noqa: S606
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    raise SystemExit(main())
