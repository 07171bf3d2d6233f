"""Who may call: with API keys configured, every route but /healthz needs
`Authorization: Bearer <key>`, as OpenAI clients send it; without keys the service is open."""

from __future__ import annotations

import pytest
from voicestack.serve_app.auth import load_api_keys, refusal

from .ray_service import running_service

KEYS = frozenset({"k-one", "k-two"})


def test_keys_come_from_the_environment_and_a_file(tmp_path):
    file = tmp_path / "keys"
    file.write_text("k-three  # the ops team\n\n# retired: k-old\n")
    env = {"VOICESTACK_API_KEYS": "k-one, k-two,", "VOICESTACK_API_KEYS_FILE": str(file)}
    assert load_api_keys(env) == {"k-one", "k-two", "k-three"}
    assert load_api_keys({}) == frozenset()


@pytest.mark.parametrize(
    ("path", "header", "refused"),
    [
        ("/v1/synthesize", "Bearer k-two", False),
        ("/v1/synthesize", None, True),
        ("/v1/synthesize", "Bearer nope", True),
        ("/v1/voices", "Basic k-one", True),
        ("/healthz", None, False),  # probes need no secret
    ],
)
def test_a_request_needs_a_valid_bearer_key_except_health(path, header, refused):
    assert (refusal(path, header, KEYS) is not None) == refused
    assert refusal(path, header, frozenset()) is None  # no keys: open


@pytest.mark.ray
def test_the_service_refuses_a_request_without_its_key_with_a_json_401(voices_dir, monkeypatch):
    # The ingress replica reads the keys when it starts; a local Ray passes this environment on.
    monkeypatch.setenv("VOICESTACK_API_KEYS", "secret-key")
    placement = {"default": {"num_cpus": 0.1}}
    with running_service([str(voices_dir / "test-duration")], placement) as service:
        client = service["client"]
        body = {"voice": "test-duration", "text": "Hello.", "format": "pcm"}
        refused = client.post("/v1/synthesize", json=body)
        assert refused.status_code == 401 and "API key" in refused.json()["error"]
        assert refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/voices").status_code == 401
        assert client.get("/healthz").status_code == 200
        allowed = client.post(
            "/v1/synthesize", json=body, headers={"Authorization": "Bearer secret-key"}
        )
        assert allowed.status_code == 200 and len(allowed.content) > 1000
