"""Who may call: optional API keys, sent as OpenAI clients send them (`Authorization: Bearer`).

Keys come from `VOICESTACK_API_KEYS` (comma-separated) and/or the file named by
`VOICESTACK_API_KEYS_FILE` (one key a line, `#` comments), read when the ingress replica
starts. With no key configured the service is open, as on a laptop. `/healthz` is always open,
so that load balancers and Kubernetes probes need no secret; so is `/`, the page that plays the
voices (serve_app/page.html): it holds nothing secret, and its own API calls send the key typed
into it.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from pathlib import Path

#: Paths answered without a key.
OPEN_PATHS = frozenset({"/healthz", "/"})


def load_api_keys(environ: dict[str, str] | None = None) -> frozenset[str]:
    env = os.environ if environ is None else environ
    keys = {k.strip() for k in env.get("VOICESTACK_API_KEYS", "").split(",")}
    file = env.get("VOICESTACK_API_KEYS_FILE")
    if file:
        for line in Path(file).read_text(encoding="utf-8").splitlines():
            keys.add(line.split("#", 1)[0].strip())
    return frozenset(k for k in keys if k)


def refusal(path: str, authorization: str | None, keys: Iterable[str]) -> str | None:
    """Why a request to `path` with this `Authorization` header is refused, or None."""
    keys = list(keys)
    if not keys or path in OPEN_PATHS:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "an API key is required: send 'Authorization: Bearer <key>'"
    given = token.strip().encode()
    # Compared in constant time, against every key, so timing says nothing of which is close.
    if not any([hmac.compare_digest(given, k.encode()) for k in keys]):
        return "the API key is not valid"
    return None
