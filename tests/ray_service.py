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


#: Serve's controller gives a new HTTP proxy 5 s (RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S) to
#: answer its first readiness check, counted from when the proxy's process is asked for, not from
#: when it runs; three misses in a row and it kills the proxy and starts another, and the
#: `serve.start` waiting on the first one fails with ActorDiedError. A proxy is a fresh Python
#: process that imports Ray Serve and starts uvicorn: 1 to 2 s on an idle 2-core machine, 12 to
#: 18 s beside two CPU-bound processes (measured), and more the busier the machine. Two minutes: a
#: proxy that is merely slow is waited for; one that fails still fails the fixture, loudly.
PROXY_READY_CHECK_TIMEOUT_S = 120
SERVE_CONTROLLER_ENV = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": str(PROXY_READY_CHECK_TIMEOUT_S)}


def start_serve(port: int, timeout_s: float = 2 * PROXY_READY_CHECK_TIMEOUT_S) -> None:
    """Serve with its HTTP proxy on 127.0.0.1:`port`, waiting (up to `timeout_s`) until the
    proxy is healthy however busy the machine is."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    http = {"host": "127.0.0.1", "port": port}
    try:
        serve.start(
            http_options=http,
            controller_options={"runtime_env": {"env_vars": SERVE_CONTROLLER_ENV}},
        )
    except TimeoutError:
        # `serve.start` itself waits for the proxy a fixed 60 s (no setting); the controller
        # keeps the proxy starting, so connect to that controller and go on waiting here.
        serve.start(http_options=http)
    while True:
        proxies = serve.status().proxies
        if proxies and all(s == "HEALTHY" for s in proxies.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Serve's HTTP proxy not healthy after {timeout_s}s: {proxies}")
        time.sleep(0.5)


#: Deploying the two test voices starts ten replicas, each a process that imports torch, and
#: builds each app in a task that imports it too: 36 s on an idle 2-core machine, 216 s beside
#: two CPU-bound processes (measured). A failed deployment is reported at once (DEPLOY_FAILED);
#: this bound only ends a deployment that hangs.
DEPLOY_TIMEOUT_S = 600


def apply_config(config: dict[str, Any], timeout_s: float = DEPLOY_TIMEOUT_S) -> None:
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
def running_service(
    voices: list[str], placement: dict, metrics_port: int | None = None, num_cpus: int = 2
) -> Iterator[dict[str, Any]]:
    """A local Ray (`num_cpus` logical CPUs), Serve on a free port, the config for `voices`
    applied, and an HTTP client for it; all shut down afterwards. `metrics_port`: where Ray
    exports its Prometheus metrics (the yielded "metrics_port"; None: a port Ray picks, not
    told)."""
    import httpx
    import ray
    from ray import serve
    from voicestack.serve_app.serve_config import serve_config

    exported = {} if metrics_port is None else {"_metrics_export_port": metrics_port}
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        **exported,
    )
    try:
        port = free_port()
        start_serve(port)
        config = serve_config(voices, placement, port=port)
        apply_config(config)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield {"client": client, "config": config, "port": port, "metrics_port": metrics_port}
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
