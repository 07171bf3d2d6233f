"""Killing replicas in the middle of streams, and telling what the client saw: shared by
tests/test_stream_failures.py and bench/faults.py.

A stream whose work is lost must either complete (its audio whole, equal to the same request
made without a fault) or say it failed: an `error` message in msgpack, an `error` event in SSE,
or, for formats that cannot carry an error (wav, pcm, mp3...), a response aborted before its
terminating chunk. The one outcome never allowed is a clean end of short audio.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from voicestack.serve_app.formats import decode_msgpack_stream

#: What a client made of a stream.
COMPLETE, ERROR, ABORTED, SHORT = "complete", "error message", "aborted", "clean but short"
#: Answered with an error status before any audio (the request never started streaming).
REFUSED = "refused"


def replica_pids(app: str, deployment: str) -> list[int]:
    """The process ids of `deployment`'s replicas in Serve application `app`."""
    import ray

    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(prefix)
    ]
    pids = []
    for name in names:
        replica = ray.get_actor(name, namespace="serve")
        try:
            pids.append(ray.get(replica.__ray_call__.remote(lambda _: os.getpid()), timeout=30))
        except Exception:  # a replica that is dying already
            continue
    return pids


def kill(app: str, deployment: str) -> int:
    """SIGKILL one replica process of `deployment` in `app`, as the kernel's OOM killer would
    (Serve starts another one). Returns its pid."""
    (pid, *_) = replica_pids(app, deployment)
    os.kill(pid, signal.SIGKILL)
    return pid


@dataclass
class Seen:
    """One stream as its client received it."""

    status: int
    body: bytes = b""
    error: str | None = None
    """The transport error that ended it (an aborted response), if any."""
    messages: list[dict] = field(default_factory=list)

    def outcome(self, whole_bytes: int | None = None) -> str:
        """COMPLETE, ERROR, ABORTED or SHORT. `whole_bytes`: the body's length without a
        fault (raw formats, whose end carries no marker)."""
        if self.status != 200:
            return REFUSED
        if self.error is not None:
            return ABORTED
        if self.messages:
            last = self.messages[-1]
            kind = last.get("type")
            if kind in ("error",) or last.get("event") == "error" or "error" in last:
                return ERROR
            return COMPLETE if kind in ("end", "speech.audio.done") else SHORT
        if whole_bytes is not None and len(self.body) < whole_bytes:
            return SHORT
        return COMPLETE

    def audio(self) -> np.ndarray:
        """The int16 samples a msgpack stream carried."""
        pieces = [m["pcm16"] for m in self.messages if m.get("type") == "audio"]
        return np.frombuffer(b"".join(pieces), dtype="<i2")


def _parse(fmt: str, body: bytes) -> list[dict]:
    if fmt == "msgpack":
        return decode_msgpack_stream(body)
    if fmt == "sse":
        return [
            json.loads(block[len(b"data: ") :])
            for block in body.split(b"\n\n")
            if block.startswith(b"data: ")
        ]
    return []


def stream(
    client: httpx.Client,
    body: dict[str, Any],
    route: str = "/v1/synthesize",
    kill_after: int | None = None,
    killing: tuple[str, str] | None = None,
    killed: list[int] | None = None,
    started: threading.Event | None = None,
    on_kill: Callable[[], None] | None = None,
) -> Seen:
    """Send one request and read its whole body; once `kill_after` bytes have arrived, kill a
    replica of `killing` = (application, deployment), recording its pid in `killed` and calling
    `on_kill` right after. `started` is set once the first bytes of the body (the voice's first
    audio) have arrived."""
    fmt = body.get("stream_format") if route == "/v1/audio/speech" else body.get("format")
    fmt = fmt or "wav"
    received = bytearray()
    with client.stream("POST", route, json=body) as response:
        seen = Seen(response.status_code)
        if response.status_code != 200:
            response.read()
            seen.body = response.content
            return seen
        try:
            for piece in response.iter_raw():
                received += piece
                if started is not None and received:
                    started.set()
                if killing is not None and kill_after is not None and len(received) > kill_after:
                    pid = kill(*killing)
                    if killed is not None:
                        killed.append(pid)
                    if on_kill is not None:
                        on_kill()
                    killing = None
        except httpx.HTTPError as e:  # the connection dropped before the body's end
            seen.error = f"{type(e).__name__}: {e}"
    seen.body = bytes(received)
    if seen.error is None:
        seen.messages = _parse(fmt, seen.body)
    elif fmt in ("msgpack", "sse"):
        with contextlib.suppress(Exception):  # cut inside a message
            seen.messages = _parse(fmt, seen.body)
    return seen


def in_background(
    client_url: str,
    body: dict[str, Any],
    route: str = "/v1/synthesize",
    started: threading.Event | None = None,
) -> tuple[threading.Thread, list[Seen]]:
    """A stream of another request in a thread of its own (its own HTTP connection)."""
    out: list[Seen] = []

    def run() -> None:
        with httpx.Client(base_url=client_url, timeout=300) as client:
            out.append(stream(client, body, route, started=started))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def wait_until_served(
    client: httpx.Client, voice: str, timeout_s: float = 120, since: float | None = None
) -> float:
    """Seconds (from `since`, default now) until a new request of `voice` gets its whole audio
    again."""
    started = time.monotonic() if since is None else since
    while time.monotonic() - started < timeout_s:
        try:
            reply = client.post(
                "/v1/synthesize",
                json={"voice": voice, "text": "Hello.", "format": "msgpack"},
                timeout=30,
            )
            if (
                reply.status_code == 200
                and decode_msgpack_stream(reply.content)[-1]["type"] == "end"
            ):
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{voice} did not answer again within {timeout_s} s")
