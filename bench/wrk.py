"""Drive a load with wrk (Debian package ``wrk``) and read its summary as JSON.

wrk is a C load generator, so it takes far less CPU per request from the server under
test than a Python client does. Each scenario is a Lua script that builds the request
bodies, stops sending after ``max_requests`` responses or ``seconds``, whichever comes
first, and prints its summary as one JSON line. wrk itself always runs for ``seconds``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Lua run by wrk. Placeholders in angle brackets are replaced before the run.
# The body functions build Alertmanager webhooks like ``alertmanager_batch`` in
# bench/ingest.py.
_SCRIPT = r"""
local prefix = "<PREFIX>"
local per_request = <ALERTS>
local hot = <HOT>
local truncated = <TRUNCATED>
local max_requests = <MAX_REQUESTS>
local counter = 0
local answered = 0
-- Global, so that done() can read it from every thread with thread:get.
rejected = 0
local threads = {}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  tag = prefix .. "-t" .. id
end

local function alert(fingerprint, n)
  return '{"status":"firing","labels":{"alertname":"BenchAlert","instance":"node-' .. n
    .. '","severity":"critical"},"annotations":{"summary":"node-' .. n
    .. ' is down"},"startsAt":"2026-11-30T08:00:00Z","endsAt":"0001-01-01T00:00:00Z",'
    .. '"fingerprint":"' .. fingerprint .. '"}'
end

request = function()
  counter = counter + 1
  local group = tag .. "-" .. counter
  local alerts = {}
  if hot then
    alerts[1] = alert(prefix .. "-hot", 0)
    group = prefix .. "-hot"
  else
    for i = 1, per_request do
      alerts[i] = alert(group .. "-" .. i, i)
    end
  end
  local body = '{"version":"4","groupKey":"{}:{batch=\\"' .. group .. '\\"}",'
    .. '"truncatedAlerts":' .. truncated .. ',"status":"firing","receiver":"bench",'
    .. '"groupLabels":{"batch":"' .. group .. '"},"commonLabels":{"alertname":"BenchAlert"},'
    .. '"alerts":[' .. table.concat(alerts, ",") .. ']}'
  return wrk.format(nil, nil, nil, body)
end

response = function(status, headers, body)
  answered = answered + 1
  if status ~= 202 then
    rejected = rejected + 1
  end
  if answered >= max_requests then
    wrk.thread:stop()
  end
end

done = function(summary, latency, requests)
  local not_accepted = 0
  for _, thread in ipairs(threads) do
    not_accepted = not_accepted + thread:get("rejected")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"seconds":%.3f,"not_accepted":%d,"socket_errors":%d,'
    .. '"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f}\n',
    summary.requests, summary.duration / 1e6, not_accepted,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    # Responses other than 202.
    not_accepted: int
    # Requests lost to connect, read or write errors or to the timeout.
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    *,
    prefix: str,
    alerts_per_request: int,
    connections: int,
    seconds: float,
    max_requests: int,
    hot: bool = False,
    truncated: int = 0,
    timeout_seconds: int = 30,
) -> WrkResult:
    """Run one wrk load against ``url`` and return its summary.

    Raises RuntimeError when wrk is missing, fails or prints no summary.
    """
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed; run `apt-get install wrk` or use --driver httpx")
    script = (
        _SCRIPT.replace("<PREFIX>", prefix)
        .replace("<ALERTS>", str(alerts_per_request))
        .replace("<HOT>", "true" if hot else "false")
        .replace("<TRUNCATED>", str(truncated))
        # Every wrk thread counts its own responses, and this harness runs one thread.
        .replace("<MAX_REQUESTS>", str(max_requests))
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        completed = subprocess.run(
            [
                wrk,
                "--threads",
                "1",
                "--connections",
                str(connections),
                "--duration",
                f"{max(1, round(seconds))}s",
                "--timeout",
                f"{timeout_seconds}s",
                "--script",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + timeout_seconds + 30,
            check=False,
        )
    finally:
        Path(handle.name).unlink()
    for line in completed.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return WrkResult(**json.loads(line.removeprefix("WRK_JSON ")))
    raise RuntimeError(
        f"wrk exited with {completed.returncode} and printed no summary:\n"
        f"{completed.stdout}\n{completed.stderr}"
    )
