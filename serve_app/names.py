"""The names of the Serve applications: the ingress finds the voices by them, the config
builder and the application builders give them. One place, imported by both sides (the
ingress and app.py would otherwise import each other)."""

from __future__ import annotations

VOICE_APP_PREFIX = "voice-"
GROUP_APP_PREFIX = "group-"
INGRESS_APP = "voicestack"


def voice_app_name(voice: str) -> str:
    """One application per voice: `voice-joe`."""
    return VOICE_APP_PREFIX + voice


def voice_of(app_name: str) -> str | None:
    """The voice an application serves, or None for the ingress and groups."""
    return app_name[len(VOICE_APP_PREFIX) :] if app_name.startswith(VOICE_APP_PREFIX) else None


def group_app_name(group: str, block_type: str) -> str:
    """One application per group and block type: `group-universal-vocoder`."""
    return f"{GROUP_APP_PREFIX}{group}-{block_type.lower()}"
