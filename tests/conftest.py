"""Shared fixtures: the two test voices, built once per test session from the real recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from voicestack.addons.loader import Addon, load_addon
from voicestack.addons.recipes.test_voices import build_test_voices
from voicestack.placement.config import Placement
from voicestack.runtime.voice import Voice, build_voice


@pytest.fixture(scope="session")
def voices_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("voices")
    build_test_voices(dest)
    return dest


@pytest.fixture(scope="session")
def duration_addon(voices_dir: Path) -> Addon:
    return load_addon(voices_dir / "test-duration")


@pytest.fixture(scope="session")
def attention_addon(voices_dir: Path) -> Addon:
    return load_addon(voices_dir / "test-attention")


def with_config(addon: Addon, **changes: Any) -> Addon:
    """The same addon (sharing its loaded networks) with some addon.json keys replaced."""
    data = addon.config.model_dump(mode="json")
    data.update(changes)
    changed = Addon(addon.root, type(addon.config).model_validate(data))
    changed._networks = addon._networks
    return changed


def voice_with(addon: Addon, stack: list | None = None, placement: dict | None = None) -> Voice:
    if stack is not None:
        addon = with_config(addon, stack=stack)
    return build_voice(addon, Placement.model_validate(placement) if placement else None)


SEED_STACK = [
    {
        "type": "StreamablePipeline",
        "sequence_block": {"type": "Encoders"},
        "streamable_block": {
            "type": "StreamableStack",
            "stack": [{"type": "Upsampler"}, {"type": "Decoder"}],
        },
    }
]
