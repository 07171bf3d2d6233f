"""Starting the service on an embedded local Ray: what `make serve` runs (`voicestack serve`)
and what the tests start.

`serve run` would do the same, but cannot say on which port Ray exports its Prometheus
metrics: an embedded Ray picks one, so nothing could scrape it. Here the port is fixed
(`--metrics-port`), Serve's HTTP proxy is given time to start on a busy machine, and the
config is applied as `serve deploy` applies it.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

#: Serve's controller gives a new HTTP proxy 5 s (RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S) to
#: answer its first readiness check, counted from when the proxy's process is asked for, not from
#: when it runs; three misses in a row and it kills the proxy and starts another, and the
#: `serve.start` waiting on the first one fails with ActorDiedError. A proxy is a fresh Python
#: process that imports Ray Serve and starts uvicorn: seconds on an idle machine, several times
#: that on a busy one (docs/benchmarks.md, "start-up"). Two minutes: a proxy that is merely slow
#: is waited for; one that fails still fails the fixture, loudly.
PROXY_READY_CHECK_TIMEOUT_S = 120
SERVE_CONTROLLER_ENV = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": str(PROXY_READY_CHECK_TIMEOUT_S)}


#: Ray starts its worker processes, every Serve replica among them, at niceness 15 (its
#: `worker_niceness`), so that they yield to Ray's own daemons. Here the replicas are the
#: service: at 15, any ordinary process on the machine (a build, a browser, a test run) takes
#: the CPU from the streams, which then fall behind real time, and a replica beside two
#: CPU-bound processes takes minutes to start (docs/reliability.md, "the suite under load").
#: An embedded Ray starts its workers at the niceness of everything else instead. Set
#: RAY_worker_niceness yourself to choose otherwise.
WORKER_NICENESS_ENV = {"RAY_worker_niceness": "0"}


def ordinary_worker_priority() -> None:
    """Have the raylets this process starts next (ray.init, a test's Cluster) start their
    workers at ordinary priority (WORKER_NICENESS_ENV), unless the environment says otherwise."""
    for key, value in WORKER_NICENESS_ENV.items():
        os.environ.setdefault(key, value)


def init_local_ray(**options: Any) -> None:
    """`ray.init` of a new local Ray for the service (`options` as ray.init's), its workers at
    ordinary priority."""
    import ray

    ordinary_worker_priority()
    ray.init(address="local", **options)


def start_serve(
    port: int, timeout_s: float = 2 * PROXY_READY_CHECK_TIMEOUT_S, host: str = "127.0.0.1"
) -> None:
    """Serve with its HTTP proxy on `host`:`port`, waiting (up to `timeout_s`) until the
    proxy is healthy however busy the machine is."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    http = {"host": host, "port": port}
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
#: builds each app in a task that imports it too: well under a minute on an idle machine, minutes
#: on a busy one (docs/benchmarks.md, "start-up"). A failed deployment is reported at once
#: (DEPLOY_FAILED); this bound only ends a deployment that hangs.
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


def serve_forever(config: dict[str, Any], metrics_port: int | None) -> None:
    """Start an embedded local Ray (its metrics on `metrics_port`), Serve, and `config` (a
    Serve config: deploy/local.yaml); say where, and serve until interrupted."""
    import ray
    from ray import serve

    exported = {} if metrics_port is None else {"_metrics_export_port": metrics_port}
    init_local_ray(include_dashboard=False, **exported)
    try:
        http = config.get("http_options", {})
        host, port = http.get("host", "127.0.0.1"), int(http.get("port", 8000))
        start_serve(port, host=host)
        apply_config(config)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print(f"voicestack: serving on http://{shown}:{port}/", flush=True)
        if metrics_port is not None:
            print(f"voicestack: metrics on http://{shown}:{metrics_port}/metrics", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(Exception):  # Serve may never have started
            serve.shutdown()
        ray.shutdown()
