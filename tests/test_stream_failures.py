"""A stream that fails after it started must look failed to the client, never like a complete
short file: a replica that dies in the middle of a stream ends a wav or pcm response without
its end (the connection is dropped before the final chunk), and a msgpack one with an `error`
message. The service answers new requests again afterwards."""

from __future__ import annotations

import time

import httpx
import pytest
from voicestack.serve_app.formats import decode_msgpack_stream

from .ray_service import running_service

pytestmark = pytest.mark.ray

LONG = " ".join(f"Sentence number {n} is here, and it goes on for a while." for n in range(1, 41))
PLACEMENT = {"default": {"num_cpus": 0.1}}


@pytest.fixture(scope="module")
def service(voices_dir):
    with running_service([str(voices_dir / "test-duration")], PLACEMENT) as running:
        yield running


def kill_replica(deployment: str) -> None:
    """SIGKILL the process of `deployment`'s replica of the test-duration voice, as the kernel's
    OOM killer would (Serve starts another one)."""
    import os
    import signal

    import ray

    prefix = f"SERVE_REPLICA::voice-test-duration#{deployment}#"
    (name,) = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(prefix)
    ]
    replica = ray.get_actor(name, namespace="serve")
    os.kill(ray.get(replica.__ray_call__.remote(lambda _: os.getpid())), signal.SIGKILL)


def stream_and_kill(service, fmt: str, deployment: str) -> tuple[bytes, Exception | None]:
    """Start a long request, kill `deployment`'s replica once audio flows, read what is left."""
    body = {"voice": "test-duration", "text": LONG, "format": fmt}
    received = b""
    with service["client"].stream("POST", "/v1/synthesize", json=body) as response:
        assert response.status_code == 200
        try:
            for piece in response.iter_raw():
                received += piece
                if len(received) > 20_000 and deployment:
                    kill_replica(deployment)
                    deployment = ""
        except httpx.HTTPError as e:  # the connection dropped before the body's end
            return received, e
    return received, None


def wait_until_served(service, timeout_s: float = 120) -> float:
    """Seconds until a new request gets its whole audio again."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        reply = service["client"].post(
            "/v1/synthesize", json={"voice": "test-duration", "text": "Hello.", "format": "msgpack"}
        )
        if reply.status_code == 200 and decode_msgpack_stream(reply.content)[-1]["type"] == "end":
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"the service did not answer again within {timeout_s} s")


@pytest.mark.parametrize("fmt", ["wav", "pcm"])
def test_a_raw_stream_whose_composer_dies_ends_without_its_end(service, fmt):
    received, error = stream_and_kill(service, fmt, "Composer")
    assert isinstance(error, httpx.RemoteProtocolError), (len(received), error)
    assert len(received) > 20_000
    wait_until_served(service)


def test_a_msgpack_stream_whose_composer_dies_ends_with_an_error_message(service):
    received, error = stream_and_kill(service, "msgpack", "Composer")
    assert error is None
    messages = decode_msgpack_stream(received)
    assert messages[-1]["type"] == "error" and messages[-1]["status"] == 500
    assert any(m["type"] == "audio" for m in messages)
    wait_until_served(service)


@pytest.mark.parametrize("deployment", ["Vocoder", "Decoder"])
def test_a_stream_whose_chunk_replica_dies_completes_whole_or_says_it_failed(service, deployment):
    received, error = stream_and_kill(service, "msgpack", deployment)
    wait_until_served(service)
    messages = decode_msgpack_stream(received)
    if messages[-1]["type"] == "error":
        return  # failed, and said so
    assert error is None and messages[-1]["type"] == "end"
    again = service["client"].post(
        "/v1/synthesize", json={"voice": "test-duration", "text": LONG, "format": "msgpack"}
    )
    whole = decode_msgpack_stream(again.content)

    def audio(ms: list[dict]) -> bytes:
        return b"".join(m["pcm16"] for m in ms if m["type"] == "audio")

    # Completed: every chunk is there (the chunk calls waited for the new replica).
    assert len(audio(messages)) == len(audio(whole))


def test_a_voice_whose_addon_fails_to_load_leaves_the_others_serving_and_health_says_why(
    service, voices_dir, tmp_path
):
    import json
    import shutil

    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    broken = tmp_path / "test-broken"
    shutil.copytree(voices_dir / "test-duration", broken)
    data = json.loads((broken / "addon.json").read_text())
    data["name"] = "test-broken"
    (broken / "addon.json").write_text(json.dumps(data))
    network = next(iter(data["networks"].values()))["file"]
    (broken / network).write_bytes(b"not an archive")  # refused by the loader, by name
    config = service["config"]
    (app,) = [a for a in config["applications"] if a["name"] == "voice-test-duration"]
    failing = json.loads(json.dumps(app))
    failing["name"], failing["args"]["addon"] = "voice-test-broken", str(broken)
    config = {**config, "applications": [*config["applications"], failing]}
    _get_global_client().deploy_apps(ServeDeploySchema.model_validate(config))

    client = service["client"]
    deadline = time.monotonic() + 300
    while "test-broken" not in (health := client.get("/healthz").json())["failed"]:
        assert time.monotonic() < deadline, health
        time.sleep(1)
    assert health["status"] == "degraded" and "test-duration" in health["voices"]
    assert (
        network in health["failed"]["test-broken"] or "archive" in health["failed"]["test-broken"]
    )
    refused = client.post("/v1/synthesize", json={"voice": "test-broken", "text": "Hello."})
    assert refused.status_code == 503 and "failed to deploy" in refused.json()["error"]
    wait_until_served(service)  # the other voice serves on
