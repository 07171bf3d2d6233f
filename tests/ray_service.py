"""Starting the real service for tests: a local Ray, Serve on a free port, configs applied the
way `serve deploy` applies them (the controller's apply_config), and a real HTTP client."""

from __future__ import annotations

import io
import socket
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(port: int) -> None:
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": port})


def apply_config(config: dict[str, Any], timeout_s: float = 120) -> None:
    """Apply a whole Serve config, as `serve deploy` does, and wait until every app runs."""
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    _get_global_client().deploy_apps(ServeDeploySchema.model_validate(config))
    names = {app["name"] for app in config["applications"]}
    deadline = time.monotonic() + timeout_s
    while True:
        apps = serve.status().applications
        states = {n: apps[n].status if n in apps else "MISSING" for n in names}
        if all(s == "RUNNING" for s in states.values()):
            return
        failed = {
            n: apps[n].message for n in names if n in apps and apps[n].status == "DEPLOY_FAILED"
        }
        if failed:
            raise RuntimeError(
                "deploy failed:\n" + "\n".join(f"{n}: {m}" for n, m in failed.items())
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"apps not running after {timeout_s}s: {states}")
        time.sleep(0.5)


@contextmanager
def running_service(voices: list[str], placement: dict) -> Iterator[dict[str, Any]]:
    """A local Ray (2 CPUs), Serve on a free port, the config for `voices` applied, and an
    HTTP client for it; all shut down afterwards."""
    import httpx
    import ray
    from ray import serve
    from voicestack.serve_app.serve_config import serve_config

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        port = free_port()
        start_serve(port)
        config = serve_config(voices, placement, port=port)
        apply_config(config)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield {"client": client, "config": config, "port": port}
        serve.shutdown()
    finally:
        ray.shutdown()


def wav_samples(body: bytes) -> tuple[int, np.ndarray]:
    """(sample rate, int16 samples) of a streamed WAV (its size fields say 'unknown')."""
    with wave.open(io.BytesIO(body)) as w:
        rate = w.getframerate()
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
    return rate, np.frombuffer(body[44:], dtype="<i2")


def pcm16(audio: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(audio, -1, 1) * 32767).astype(np.int16)
