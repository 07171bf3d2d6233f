"""Per-voice autoscaling, seen working: load on one voice scales that voice's deployments up
(replica counts read from `serve.status()`) while the other voice stays at its minimum, and
both come back down once the load stops.

A local Ray with 8 logical CPUs (every replica asks 0.1, so the two cores only need to run
them, not to fit a CPU each), autoscaling with short delays so the test takes a minute, not
the cluster placement's ten."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from voicestack.addons.search_path import find_voice

from .ray_service import running_service

pytestmark = pytest.mark.ray

SCALING = {
    "min_replicas": 1,
    "max_replicas": 3,
    "target_ongoing_requests": 1,
    "upscale_delay_s": 1,
    "downscale_delay_s": 5,
}
PLACEMENT = {
    "default": {"num_cpus": 0.1, "autoscaling": SCALING},
    "blocks": {"Composer": {"autoscaling": SCALING}},
}
TEXT = " ".join(["The train to the coast leaves at nine, so we should hurry."] * 4)


def replicas(app: str) -> dict[str, int]:
    """Running replicas of each deployment of one application."""
    from ray import serve

    deployments = serve.status().applications[app].deployments
    return {name: d.replica_states.get("RUNNING", 0) for name, d in deployments.items()}


def settled_at_minimum(app: str, timeout_s: float = 120) -> bool:
    """Whether every deployment of `app` is down to one replica within `timeout_s` (the
    downscale delay plus the controller's loop, with room for a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while max(replicas(app).values()) > 1:
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def test_load_on_one_voice_scales_its_deployments_and_not_the_others(voices_dir):
    voices = [str(find_voice("joe").path), str(voices_dir / "test-duration")]
    with running_service(voices, PLACEMENT, num_cpus=8) as service:
        url = f"http://127.0.0.1:{service['port']}"
        # The replicas' warm-up calls count as ongoing requests: on a busy machine they last
        # long enough to scale a deployment up before any client came. Start from the minimum.
        assert settled_at_minimum("voice-joe"), replicas("voice-joe")
        stop = threading.Event()

        def talk() -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                while not stop.is_set():
                    client.post("/v1/synthesize", json={"voice": "joe", "text": TEXT})

        clients = [threading.Thread(target=talk, daemon=True) for _ in range(6)]
        for c in clients:
            c.start()
        timeline = []
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                joe, other = replicas("voice-joe"), replicas("voice-test-duration")
                timeline.append((time.monotonic(), joe, other))
                if max(joe.values()) > 1:
                    break
                time.sleep(1)
        finally:
            stop.set()
            for c in clients:
                c.join(timeout=180)
        joe, other = timeline[-1][1], timeline[-1][2]
        assert max(joe.values()) > 1, f"joe never scaled up: {timeline[-1]}"
        assert set(other.values()) == {1}, other  # the idle voice stays at its minimum
        # Load gone: back to one replica each, after the downscale delay.
        assert settled_at_minimum("voice-joe"), replicas("voice-joe")
        assert set(replicas("voice-test-duration").values()) == {1}
