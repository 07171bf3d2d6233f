"""A Voice: an addon's front end and stack, built by the registry and checked end to end.

The stack's top-level list is built as a StreamableStack; it must start from the features the
front end makes (symbols, word starts) and end in audio.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voicestack.addons.build_env import AddonBuildEnv
from voicestack.blocks import REGISTRY
from voicestack.blocks.core.base import Block
from voicestack.blocks.core.registry import BlockRegistry
from voicestack.blocks.errors import Problem, StackError

if TYPE_CHECKING:
    from voicestack.addons.loader import Addon
    from voicestack.addons.network import Network
    from voicestack.blocks.core.chunk import Chunk
    from voicestack.blocks.core.request import RequestOptions, VoiceRequest
    from voicestack.blocks.core.sequence import SequenceBlock
    from voicestack.blocks.core.stack import StreamableStack
    from voicestack.placement.config import Placement
    from voicestack.runtime.plan import Plan


@dataclass
class Voice:
    addon: Addon
    frontend: SequenceBlock
    stack: StreamableStack
    env: AddonBuildEnv = field(repr=False)
    plan: Plan = field(repr=False)

    @property
    def name(self) -> str:
        return self.addon.name

    @property
    def sample_rate(self) -> int:
        return self.addon.audio.sample_rate

    def sentences(self, text: str) -> list[str]:
        return self.frontend.sentences(text)  # type: ignore[attr-defined]

    @property
    def reads(self) -> frozenset[str]:
        """The request keys (blocks/core/request.py) that some block of this voice reads."""
        return self.plan.reads

    def request(self, options: RequestOptions | None = None) -> VoiceRequest:
        """`options` checked against this voice (RequestError names what it cannot do)."""
        from voicestack.blocks.core.request import RequestOptions, for_voice

        return for_voice(
            options or RequestOptions(), self.name, self.reads, self.addon.config.speakers
        )

    def features(
        self, sentence: str, request: VoiceRequest | None = None, index: int = 0
    ) -> dict[str, Any]:
        """The front end's features of sentence `index` of a request, with the request's keys
        (its seed, speaker, speed). Raises NothingToSayError for a sentence without anything
        to say."""
        features = self.frontend({"text": sentence})
        features.update((request or self.request()).features(index))
        return features

    def stream_sentence(
        self, sentence: str, request: VoiceRequest | None = None, index: int = 0
    ) -> Iterator[Chunk]:
        """Audio chunks of one sentence, made as they are asked for."""
        from voicestack.runtime.plan import stream_local

        return stream_local(self.plan, self.features(sentence, request, index))

    def networks(self) -> list[Network]:
        """The networks this voice's blocks call."""
        found = {id(b.network): b.network for b in self.stack.walk() if hasattr(b, "network")}
        return list(found.values())

    def describe(self) -> dict[str, Any]:
        return {"frontend": self.frontend.describe(), "stack": self.stack.describe()["stack"]}

    @property
    def speakers(self) -> list[str]:
        """The speakers' names, in the order of their ids (empty: one speaker)."""
        return self.plan.speaker_names


def build_voice(
    addon: Addon, placement: Placement | None = None, registry: BlockRegistry = REGISTRY
) -> Voice:
    """Build and check a voice; raise StackError with every problem found, each with its key."""
    from voicestack.blocks.core.sequence import SequenceBlock
    from voicestack.blocks.core.stack import StreamableStack

    merged = addon.placement.overridden_by(placement) if placement is not None else addon.placement
    env = AddonBuildEnv(addon, merged)
    problems: list[Problem] = []
    frontend: Block | None = None
    stack: StreamableStack | None = None
    try:
        frontend = registry.build(addon.config.frontend, "frontend", env)
        if not isinstance(frontend, SequenceBlock) or "text" not in frontend.inputs:
            problems.append(
                Problem(
                    "frontend",
                    f"{frontend.type_name} is not a front end (a SequenceBlock taking 'text')",
                )
            )
    except StackError as e:
        problems += e.problems
    try:
        built = registry.build({"type": "StreamableStack", "stack": addon.config.stack}, "", env)
        assert isinstance(built, StreamableStack)
        stack = built
    except StackError as e:
        problems += [Problem(p.key.lstrip("."), p.message) for p in e.problems]
    if frontend is not None and stack is not None and not problems:
        from voicestack.blocks.core.request import REQUEST_KEYS

        kind, found = stack.check(set(frontend.outputs) | REQUEST_KEYS, None)
        problems += [Problem(p.key.lstrip("."), p.message) for p in found]
        if not found and kind != "audio":
            problems.append(Problem("stack", f"the stack must end in audio; it yields {kind!r}"))
    if problems:
        raise StackError(problems)
    from voicestack.runtime.plan import compile_plan

    assert isinstance(frontend, SequenceBlock) and stack is not None  # else a problem above
    return Voice(addon, frontend, stack, env, compile_plan(addon, merged, stack))
