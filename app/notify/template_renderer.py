"""Render users' Jinja2 body templates in a child process limited in time, memory and output.

Jinja2's ``SandboxedEnvironment`` keeps a template away from Python internals, but not
from the CPU or memory: loops nest (``range`` allows 100,000 items per loop), and
``'x' * 10**8``, ``center`` or ``replace`` build strings of any size. A thread cannot be
stopped safely, so templates render in a child Python process that this module starts
once and kills when a render takes longer than the timeout. The child limits its own
address space and stops reading a render's output past ``max_bytes``.

Run as ``python -m app.notify.template_renderer`` it is that child: it reads one JSON
request per line on stdin and writes one JSON reply per line on stdout.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from app.core.logging import get_logger

log = get_logger(__name__)

# The largest rendered body, in bytes of UTF-8.
MAX_RENDERED_BYTES = 65_536
# How long one render may take, in seconds, before the child process is killed.
RENDER_TIMEOUT_SECONDS = 2.0
# Memory the child may allocate beyond its size at start, in bytes.
MEMORY_HEADROOM_BYTES = 256 * 1024 * 1024
# How long the child may take to start and import Jinja2, in seconds.
START_TIMEOUT_SECONDS = 30.0
# Environment variables the child keeps; the rest (secrets among them) stay with the parent.
_CHILD_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "SYSTEMROOT")


class RenderError(Exception):
    """A template did not render. ``retryable`` is True when the template is not to blame."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class TemplateRenderer:
    """A child process that renders templates one at a time; thread-safe.

    The child starts on the first render, and again after it was killed or exited.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float = RENDER_TIMEOUT_SECONDS,
        max_bytes: int = MAX_RENDERED_BYTES,
        memory_headroom_bytes: int = MEMORY_HEADROOM_BYTES,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self.memory_headroom_bytes = memory_headroom_bytes
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def render(self, source: str, variables: Mapping[str, Any]) -> str:
        """Render ``source`` with ``variables`` (JSON values); raises RenderError.

        Blocks for up to the timeout, so async code calls it through a thread.
        """
        request = {"template": source, "variables": variables, "max_bytes": self.max_bytes}
        line = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            process = self._running()
            try:
                assert process.stdin is not None
                process.stdin.write(line)
                process.stdin.flush()
                reply = self._read_reply(process, self.timeout_seconds)
            except OSError as exc:
                log.warning("template_renderer.failed", error=str(exc))
                self._stop()
                raise RenderError(f"the template renderer failed: {exc}", retryable=True) from exc
            if reply is None:
                log.warning("template_renderer.timed_out", timeout_seconds=self.timeout_seconds)
                self._stop()
                raise RenderError(
                    f"rendering timed out after {self.timeout_seconds:g} seconds and was "
                    "stopped. Simplify the template's loops."
                )
            if reply.get("exit"):
                log.warning("template_renderer.restarted", error=reply.get("error"))
                self._stop()
        if reply.get("ok"):
            body: str = reply["body"]
            return body
        raise RenderError(str(reply.get("error", "the template failed")))

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        try:
            process = subprocess.Popen(  # noqa: S603 - runs this interpreter on this module
                [
                    sys.executable,
                    "-m",
                    __name__,
                    str(self.memory_headroom_bytes),
                    str(self.timeout_seconds),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={name: os.environ[name] for name in _CHILD_ENVIRONMENT if name in os.environ},
            )
        except OSError as exc:
            log.error("template_renderer.start_failed", error=str(exc))
            raise RenderError(
                f"the template renderer could not start: {exc}", retryable=True
            ) from exc
        self._process = process
        self._buffer = b""
        ready = self._read_reply(process, START_TIMEOUT_SECONDS)
        if ready is None or not ready.get("ready"):
            log.error("template_renderer.start_failed", error="no ready message from the child")
            self._stop()
            raise RenderError(
                "the template renderer did not start; see the server log", retryable=True
            )
        return process

    def _read_reply(
        self, process: subprocess.Popen[bytes], timeout_seconds: float
    ) -> dict[str, Any] | None:
        """Read one reply line; None when none arrived in time. Raises OSError on EOF."""
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_seconds
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return None
                chunk = os.read(process.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise OSError("the renderer process exited")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _stop(self) -> None:
        process, self._process = self._process, None
        self._buffer = b""
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


_renderer = TemplateRenderer()
atexit.register(_renderer.close)


def render(source: str, variables: Mapping[str, Any]) -> str:
    """Render with the process-wide renderer; raises RenderError."""
    return _renderer.render(source, variables)


def renderer() -> TemplateRenderer:
    """Return the process-wide renderer, so tests can change its limits."""
    return _renderer


# The child process.


def _limit_memory(headroom_bytes: int) -> None:
    """Cap the address space at the current size plus ``headroom_bytes``."""
    try:
        import resource

        pages = int(Path("/proc/self/statm").read_text().split()[0])
        limit = pages * os.sysconf("SC_PAGE_SIZE") + headroom_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError):
        # NOTE: without /proc or RLIMIT_AS (macOS, Windows) the child's memory is not capped;
        # the timeout still stops it.
        return


def _render_one(
    environment: SandboxedEnvironment, source: str, variables: dict[str, Any], max_bytes: int
) -> dict[str, Any]:
    try:
        template = environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        return {"ok": False, "error": f"Template syntax error on line {exc.lineno}: {exc.message}"}
    except RecursionError:
        return {"ok": False, "error": "the template is nested too deeply"}
    size = 0
    chunks: list[str] = []
    for chunk in template.generate(variables):
        size += len(chunk.encode())
        if size > max_bytes:
            return {
                "ok": False,
                "error": f"the rendered body is larger than {max_bytes:,} bytes, the maximum",
            }
        chunks.append(chunk)
    return {"ok": True, "body": "".join(chunks)}


def _set_alarm(seconds: int) -> None:
    if hasattr(signal, "alarm"):
        signal.alarm(seconds)


def _write(stream: IO[bytes], reply: dict[str, Any]) -> None:
    stream.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
    stream.flush()


def main() -> None:
    """Serve render requests on stdin and stdout until stdin closes."""
    headroom_bytes = int(sys.argv[1]) if len(sys.argv) > 1 else MEMORY_HEADROOM_BYTES
    timeout_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else RENDER_TIMEOUT_SECONDS
    environment = SandboxedEnvironment(
        autoescape=False, undefined=jinja2.ChainableUndefined, keep_trailing_newline=True
    )
    _limit_memory(headroom_bytes)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _write(stdout, {"ready": True})
    for line in stdin:
        request = json.loads(line)
        # SIGALRM ends this process even in a C loop, should the parent be gone and
        # unable to kill it.
        _set_alarm(math.ceil(timeout_seconds) + 1)
        try:
            reply = _render_one(
                environment, request["template"], request["variables"], request["max_bytes"]
            )
        except MemoryError:
            reply = {
                "ok": False,
                "exit": True,
                "error": f"rendering used more than {headroom_bytes // 2**20} MiB of memory",
            }
        except RecursionError:
            reply = {"ok": False, "error": "the template recursed too deeply"}
        except Exception as exc:
            # Whatever a template raises (OverflowError from range, a filter's TypeError)
            # is the template's fault.
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            _set_alarm(0)
        _write(stdout, reply)
        if reply.get("exit"):
            return


if __name__ == "__main__":
    main()
