"""Starting the real service for tests: a local Ray, Serve on a free port, configs applied the
way `serve deploy` applies them (the controller's apply_config), and a real HTTP client."""

from __future__ import annotations

import io
import os
import socket
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from voicestack.runtime.pcm import pcm16 as runtime_pcm16
from voicestack.serve_app.launch import (  # noqa: F401  (the tests' names for them)
    DEPLOY_TIMEOUT_S,
    PROXY_READY_CHECK_TIMEOUT_S,
    apply_config,
    init_local_ray,
    start_serve,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_service(
    voices: list[str],
    placement: dict,
    metrics_port: int | None = None,
    num_cpus: int = 2,
    env: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """A local Ray (`num_cpus` logical CPUs), Serve on a free port, the config for `voices`
    applied, and an HTTP client for it; all shut down afterwards. `metrics_port`: where Ray
    exports its Prometheus metrics (the yielded "metrics_port"; None: a port Ray picks, not
    told). `env`: variables the Ray processes start with (the ingress's settings, Ray's own),
    set for the service's life and restored afterwards."""
    import httpx
    import ray
    from ray import serve
    from voicestack.serve_app.serve_config import serve_config

    exported = {} if metrics_port is None else {"_metrics_export_port": metrics_port}
    with _environment(env or {}):
        init_local_ray(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, **exported)
        try:
            port = free_port()
            start_serve(port)
            config = serve_config(voices, placement, port=port)
            apply_config(config)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                yield {
                    "client": client,
                    "config": config,
                    "port": port,
                    "metrics_port": metrics_port,
                }
            serve.shutdown()
        finally:
            ray.shutdown()


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # inherited by the processes ray.init starts
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def wav_samples(body: bytes) -> tuple[int, np.ndarray]:
    """(sample rate, int16 samples) of a streamed WAV (its size fields say 'unknown')."""
    with wave.open(io.BytesIO(body)) as w:
        rate = w.getframerate()
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
    return rate, np.frombuffer(body[44:], dtype="<i2")


def pcm16(audio: np.ndarray) -> np.ndarray:
    """The int16 samples the service sends for float `audio` (its one conversion)."""
    return np.frombuffer(runtime_pcm16(audio), dtype="<i2")
