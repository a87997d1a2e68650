"""Run Tocsin and third-party programs as real processes on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.receiver import free_port

VENV_BIN = Path(sys.executable).parent

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to kill this child when the test run dies, even by SIGKILL.

    Used as ``preexec_fn``: without it, a test run stopped from outside leaves servers
    and workers running against the test database. Other systems skip it.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Process:
    """A child process whose output goes to a log file that failing tests can show."""

    def __init__(self, args: list[str], *, env: Mapping[str, str], log_path: Path) -> None:
        self.args = args
        self.env = dict(env)
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        log_file.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def tocsin_env(database_url: str, data_dir: Path, port: int, secret_key: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOCSIN_")}
    env.update(
        {
            "TOCSIN_DATABASE_URL": database_url,
            "TOCSIN_DATA_DIR": str(data_dir),
            "TOCSIN_SECRET_KEY": secret_key,
            "TOCSIN_PORT": str(port),
            "TOCSIN_HOST": "127.0.0.1",
            "TOCSIN_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TOCSIN_LOG_LEVEL": "info",
        }
    )
    return env


async def start_tocsin(
    database_url: str, data_dir: Path, secret_key: str, *extra_args: str
) -> tuple[Process, str]:
    """Start `tocsin serve` on a free port and wait until /readyz returns 200."""
    port = free_port()
    process = Process(
        [str(VENV_BIN / "tocsin"), "serve", *extra_args],
        env=tocsin_env(database_url, data_dir, port, secret_key),
        log_path=data_dir / "tocsin.log",
    )
    process.start()
    base_url = f"http://127.0.0.1:{port}"
    await wait_until_ready(process, f"{base_url}/readyz")
    return process, base_url


async def wait_until_ready(process: Process, url: str, timeout: float = 30.0) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            assert process.popen is not None
            if process.popen.poll() is not None:
                raise AssertionError(f"{process.args[0]} exited early:\n{process.log()}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} was not ready after {timeout} s:\n{process.log()}")
