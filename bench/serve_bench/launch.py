"""Starting and stopping the servers, one at a time, each behind the same HTTP API (but one:
Piper's own HTTP server, which the client speaks to in its own API).

The plain ASGI servers run as uvicorn subprocesses (as they would be deployed), so their memory
and CPU are their own and not the benchmark client's. voicestack runs on a local Ray started the
way the Ray tests start it (`tests/ray_service.running_service`): 2 CPUs, every block at
0.1 CPU, so all its replicas fit on this machine at once. A server is only handed out once it
answered a real synthesis request, so a level never measures start-up.

The two Piper servers run Piper's own engine on the Piper model the voice was imported from
(`piper_model`): `piper-stream` (bench/serve_bench/piper_server.py, a uvicorn subprocess like
the plain ASGI servers) and `piper-http` (`python -m piper.http_server`, Piper's Flask server,
as shipped; needs `flask`, piper-tts's `http` extra).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.serve_bench.sampler import ProcessFinder, process_tree, ray_processes

REPO = Path(__file__).resolve().parents[2]
#: voicestack runs with the laptop placement `make serve` uses (deploy/placements/local.yaml:
#: admission, cross-request batching of Decoder and Vocoder chunks); `voicestack-unbatched`
#: with the same placement less every `batching` entry, and `voicestack-unfused` less every
#: `fuse` entry (each block in a deployment of its own), so that each on/off comparison differs
#: in nothing else.
SERVERS: tuple[str, ...] = (
    "naive",
    "streaming",
    "voicestack",
    "voicestack-unbatched",
    "voicestack-unfused",
    "piper-stream",
    "piper-http",
)
#: Servers running Piper's own engine on the voice's Piper model.
PIPER_SERVERS: tuple[str, ...] = ("piper-stream", "piper-http")
#: One line per server, for the results file.
DESCRIPTIONS: dict[str, str] = {
    "naive": "Starlette + uvicorn, synthesize() the whole text in the thread pool, then return it",
    "streaming": "the same, a StreamingResponse over synthesize_stream(), chunk by chunk",
    "voicestack": "voicestack on Ray Serve, the laptop placement (deploy/placements/local.yaml)",
    "voicestack-unbatched": "the same, less every `batching` entry",
    "voicestack-unfused": "the same, less every `fuse` entry: a deployment per block",
    "piper-stream": "Piper's engine (piper-tts) in Starlette + uvicorn: voice.synthesize(text), "
    "one chunk per sentence sent as made; normalize_audio=False; onnxruntime default session",
    "piper-http": "Piper's own server, `python -m piper.http_server -m MODEL` (Flask): "
    "POST /synthesize {text}, one whole WAV",
}
PLACEMENT_FILE = REPO / "deploy" / "placements" / "local.yaml"
READY_TIMEOUT_S = 180.0


@dataclass
class Server:
    """A running server: where to send requests, and which processes are its memory."""

    name: str
    url: str
    processes: ProcessFinder
    details: dict[str, Any] = field(default_factory=dict)
    #: How the client speaks to it (bench/serve_bench/client.py PROTOCOLS).
    protocol: str = "voicestack"
    #: Whether a text's audio has one length on this server (the harness fixes voicestack's
    #: seed; Piper draws its noise inside its graph, so its durations vary per request): only
    #: then is a shorter clean stream a lost one.
    reproducible: bool = True


def resolve_voice(voice: str) -> Path:
    """The addon folder of `voice`: a folder, a voice on the search path, or a test voice
    (built into the cache on first use, even when other voices are installed)."""
    from voicestack.addons.search_path import find_voice, test_voices

    path = Path(voice)
    if (path / "addon.json").is_file():
        return path.resolve()
    try:
        return find_voice(voice).path
    except LookupError:
        for folder in test_voices():
            if folder.name == voice:
                return folder
        raise


def piper_model(voice_name: str) -> Path:
    """The Piper model (.onnx, its .onnx.json beside it) that voice `voice_name` was imported
    from: a Piper voice an installed package ships (addons/search_path.py
    PACKAGED_PIPER_VOICES; located, not imported). Other voices need `--piper-model`."""
    import importlib.util

    from voicestack.addons.search_path import PACKAGED_PIPER_VOICES

    if voice_name not in PACKAGED_PIPER_VOICES:
        known = ", ".join(PACKAGED_PIPER_VOICES)
        raise LookupError(
            f"no Piper model known for voice {voice_name!r} (packaged: {known}); "
            "pass --piper-model MODEL.onnx"
        )
    package, model_file = PACKAGED_PIPER_VOICES[voice_name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"package {package} (voice {voice_name!r}) is not installed")
    model = Path(list(spec.submodule_search_locations)[0]) / model_file
    if not model.is_file():
        raise LookupError(f"{model} is missing")
    return model


def free_port() -> int:
    from tests.ray_service import free_port as find

    return find()


def warm_up(url: str, voice_name: str, alive: Callable[[], str | None]) -> dict[str, Any]:
    """Wait until the server answers `/healthz` and one synthesis; return its health body."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    payload = {"voice": voice_name, "text": "Warming up.", "format": "pcm"}
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            failure = alive()
            if failure is not None:
                raise RuntimeError(failure)
            try:
                health = client.get("/healthz")
                if health.status_code == 200 and voice_name in health.json().get("voices", []):
                    answer = client.post("/v1/synthesize", json=payload)
                    if answer.status_code == 200 and answer.content:
                        return health.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not serve {voice_name!r} within {READY_TIMEOUT_S:.0f} s")


def _exited(process: subprocess.Popen, log: Path) -> Callable[[], str | None]:
    def check() -> str | None:
        if process.poll() is None:
            return None
        tail = log.read_text(errors="replace")[-2000:]
        return f"server exited with {process.returncode}:\n{tail}"

    return check


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def warm_up_piper_http(url: str, alive: Callable[[], str | None]) -> dict[str, Any]:
    """Wait until Piper's HTTP server answers `/info` and one synthesis; return its voice."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            failure = alive()
            if failure is not None:
                raise RuntimeError(failure)
            try:
                info = client.get("/info")
                if info.status_code == 200:
                    answer = client.post("/synthesize", json={"text": "Warming up."})
                    if answer.status_code == 200 and answer.content[:4] == b"RIFF":
                        return {"status": "ok", "piper_voice": info.json().get("voice")}
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise TimeoutError(f"{url} (piper.http_server) did not serve within {READY_TIMEOUT_S:.0f} s")


@contextmanager
def _subprocess_server(
    name: str,
    command: list[str],
    logs: Path,
    port: int,
    ready: Callable[[str, Callable[[], str | None]], dict[str, Any]],
    **server: Any,
) -> Iterator[Server]:
    """`command` (listening on `port`) as server `name`, handed out once `ready` returned."""
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        health = ready(url, _exited(process, log))
        details = {"pid": process.pid, "command": command, **health}
        yield Server(name, url, process_tree(process.pid), details, **server)
    finally:
        _stop(process)


@contextmanager
def asgi_server(mode: str, voice_path: Path, voice_name: str, logs: Path) -> Iterator[Server]:
    """The naive or streaming server (bench/serve_bench/servers.py) in a uvicorn subprocess."""
    port = free_port()
    command = [sys.executable, "-m", "bench.serve_bench.servers"]
    command += ["--mode", mode, "--voice", str(voice_path), "--port", str(port)]
    ready = lambda url, alive: warm_up(url, voice_name, alive)  # noqa: E731
    with _subprocess_server(mode, command, logs, port, ready) as server:
        yield server


@contextmanager
def piper_stream_server(model: Path, voice_name: str, logs: Path) -> Iterator[Server]:
    """Piper's engine streamed sentence by sentence (bench/serve_bench/piper_server.py), in a
    uvicorn subprocess, serving `model` as `voice_name`."""
    port = free_port()
    command = [sys.executable, "-m", "bench.serve_bench.piper_server"]
    command += ["--model", str(model), "--name", voice_name, "--port", str(port)]
    ready = lambda url, alive: warm_up(url, voice_name, alive)  # noqa: E731
    with _subprocess_server(
        "piper-stream", command, logs, port, ready, reproducible=False
    ) as server:
        server.details["model"] = str(model)
        yield server


@contextmanager
def piper_http_server(model: Path, logs: Path) -> Iterator[Server]:
    """Piper's own HTTP server, as shipped: `python -m piper.http_server -m MODEL` (Flask's
    threaded development server; whole WAV files, Piper's default per-sentence peak
    normalisation, the model patched in memory for alignments as that server does)."""
    port = free_port()
    command = [sys.executable, "-m", "piper.http_server", "-m", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with _subprocess_server(
        "piper-http",
        command,
        logs,
        port,
        warm_up_piper_http,
        protocol="piper-http",
        reproducible=False,
    ) as server:
        server.details["model"] = str(model)
        yield server


@contextmanager
def own_local_ray() -> Iterator[None]:
    """Make `ray.init()` start a Ray of its own. Without an address it joins the cluster named
    in /tmp/ray/ray_current_cluster when there is one (another run's, a test's
    `ray.cluster_utils.Cluster`), and then fails on `num_cpus` or measures someone else's."""
    previous = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = "local"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = previous


def read_placement(path: Path) -> dict[str, Any]:
    """A placement file (YAML, as in deploy/placements/) as the dict a Serve config carries."""
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def without_batching(placement: dict[str, Any]) -> dict[str, Any]:
    """`placement` with every entry's `batching` removed (each block calls one chunk at a time)."""
    return _without(placement, "batching")


def without_fusing(placement: dict[str, Any]) -> dict[str, Any]:
    """`placement` with every entry's `fuse` removed (each block in a deployment of its own)."""
    return _without(placement, "fuse")


def with_shared_griffin_lim(placement: dict[str, Any]) -> dict[str, Any]:
    """`placement` with Griffin-Lim one deployment for every voice that uses it (the group
    `make serve`'s placement had before its blocks were fused)."""
    out = copy.deepcopy(placement)
    out.setdefault("blocks", {})["GriffinLim"] = {"group": "universal", "threads": 2}
    return out


def _without(placement: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(placement)
    for section in [out.get("default") or {}, *(out.get("blocks") or {}).values()] + [
        e for voice in (out.get("voices") or {}).values() for e in voice.values()
    ]:
        section.pop(key, None)
    return out


def with_admission(placement: dict[str, Any], voice: str, max_active: int) -> dict[str, Any]:
    """`placement` with the Composer admitting `max_active` streams at once, for every voice
    (the blocks' entry) and for `voice` by name (so that an entry for it, here or in its addon,
    cannot cap it lower), the other admission settings kept. The open loop measures what a
    voice keeps real-time, so its admission must not cap the streams first."""
    out = copy.deepcopy(placement)
    blocks = out["blocks"] = out.get("blocks") or {}
    voices = out["voices"] = out.get("voices") or {}
    composer = blocks.setdefault("Composer", {})
    voices[voice] = voices.get(voice) or {}
    own = voices[voice].setdefault("Composer", {})
    own.setdefault("streams", dict(composer.get("streams") or {}))
    entries = [composer] + [e["Composer"] for e in voices.values() if e and "Composer" in e]
    for entry in entries:
        entry["streams"] = {**(entry.get("streams") or {}), "max_active": max_active}
    return out


@contextmanager
def voicestack_server(
    name: str, voice_path: Path, voice_name: str, placement: dict[str, Any]
) -> Iterator[Server]:
    """voicestack on a local Ray Serve (started in this process, as the Ray tests do)."""
    from tests.ray_service import running_service

    with own_local_ray(), running_service([str(voice_path)], placement) as service:
        url = f"http://127.0.0.1:{service['port']}"
        health = warm_up(url, voice_name, lambda: None)
        deployments = sum(len(a.get("deployments", [])) for a in service["config"]["applications"])
        details = {"placement": placement, "deployments": deployments + 1, **health}
        yield Server(name, url, ray_processes, details)


@contextmanager
def start_server(
    name: str,
    voice_path: Path,
    voice_name: str,
    logs: Path,
    placement: dict[str, Any] | None = None,
    model: Path | None = None,
) -> Iterator[Server]:
    """Any of SERVERS by name; `placement` replaces the laptop placement for both voicestacks,
    `model` the Piper model found for the voice (`piper_model`) for both Piper servers."""
    if name in PIPER_SERVERS:
        model = model if model is not None else piper_model(voice_name)
        if name == "piper-stream":
            with piper_stream_server(model, voice_name, logs) as server:
                yield server
        else:
            with piper_http_server(model, logs) as server:
                yield server
    elif name in ("voicestack", "voicestack-unbatched", "voicestack-unfused"):
        chosen = placement if placement is not None else read_placement(PLACEMENT_FILE)
        if name == "voicestack-unbatched":
            chosen = without_batching(chosen)
        elif name == "voicestack-unfused":
            chosen = without_fusing(chosen)
        with voicestack_server(name, voice_path, voice_name, chosen) as server:
            yield server
    elif name in SERVERS:
        with asgi_server(name, voice_path, voice_name, logs) as server:
            yield server
    else:
        known = ", ".join(SERVERS)
        raise ValueError(f"unknown server {name!r}; expected one of {known}")
