"""AttentionDecoder: the legacy autoregressive (Tacotron-like) decoder as a stream source.

Each step feeds the previous frame back in, attends over the encodings, and emits one mel frame
and a stop logit. The loop stops on the stop token or at a length cap, and yields every
`chunk_frames` frames. The loop is written as steps over any number of streams (`start`,
`step`), so that a server can step every stream in flight with one network call per frame;
alone, a stream is a batch of one. The step network is exported once; the loop lives here, on the host.
Its recurrent state is every input that is also an output by the same name (hidden state,
attention position, ...), plus `prev_frame`, which takes the output `frame`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field
from voicestack.blocks.core.base import BlockConfig, BuildEnv
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.core.sequence import Features
from voicestack.blocks.core.streamable import StreamableBlock
from voicestack.blocks.errors import Problem, StackError

PREV_FRAME, FRAME, STOP, MASK, WEIGHTS = "prev_frame", "frame", "stop", "mask", "weights"


class AttentionDecoder(StreamableBlock):
    consumes = None
    produces = "mel"

    class Config(BlockConfig):
        network: str = "attention_decoder"
        memory: str = Field(default="encodings", description="the feature attended over")
        chunk_frames: int = Field(default=16, ge=1)
        stop_threshold: float = Field(default=0.5, gt=0, lt=1)
        max_frames_per_symbol: float = Field(default=12.0, gt=0)
        max_frames: int = Field(default=4000, ge=1)

    config: Config

    def __init__(self, config: Config, env: BuildEnv, path: str = ""):
        super().__init__(config, env, path)
        self.network = env.network(config.network, "AttentionDecoder", f"{self.path}.network")
        spec = self.network.spec
        ins = {t.name: t for t in spec.inputs}
        outs = {t.name: t for t in spec.outputs}
        problems = [
            Problem(f"networks.{config.network}.{side}", f"{what} is required by AttentionDecoder")
            for side, what, present in [
                ("inputs", f"input {PREV_FRAME!r}", PREV_FRAME in ins),
                ("inputs", f"input {config.memory!r}", config.memory in ins),
                ("outputs", f"output {FRAME!r}", FRAME in outs),
                ("outputs", f"output {STOP!r}", STOP in outs),
            ]
            if not present
        ]
        if problems:
            raise StackError(problems)
        self._state = [n for n in ins if n in outs]
        unfixed = [
            n
            for n in self._state + [PREV_FRAME]
            if any(not isinstance(d, int) for d in ins[n].shape[1:])
        ]
        if unfixed:
            raise StackError(
                [
                    Problem(
                        f"networks.{config.network}.inputs",
                        f"state inputs need fixed sizes after the batch dim: {unfixed}",
                    )
                ]
            )
        self._state_shapes = {n: list(ins[n].shape[1:]) for n in self._state + [PREV_FRAME]}

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.config.memory,)

    #: Its frames can be made for several streams at once: `start` each stream, then `step`
    #: any of them together, one network call per step (a server steps every stream in flight
    #: together; serve_app/stepping.py). `stream` runs the same loop for one stream alone.
    steps_together: ClassVar[bool] = True

    @property
    def seconds_per_frame(self) -> float:
        """The audio one frame makes (hop / sample rate): how far a frame moves a stream's
        playback on, which orders streams stepped together."""
        audio = self.env.require_addon(self.path).audio
        return audio.hop_length / audio.sample_rate

    @property
    def max_streams(self) -> int:
        """The most streams one `step` runs in one network call (1 for a step network
        exported with a fixed batch of 1; `step` then makes one call per stream)."""
        return self.network.max_batch

    def start(self, features: Features) -> DecoderStream:
        """One utterance's place in the loop, before its first frame."""
        import torch

        cfg = self.config
        memory = features[cfg.memory]
        state = {n: torch.zeros(shape) for n, shape in self._state_shapes.items()}
        cap = min(cfg.max_frames, max(1, int(cfg.max_frames_per_symbol * memory.shape[0])))
        return DecoderStream(memory, state, cap)

    def step(self, streams: list[DecoderStream]) -> list[tuple[Any, bool, int | None]]:
        """The next frame of each of `streams` (none of them done), in one network call: their
        encodings are padded to a common length and masked, so each row computes what it
        would alone. Per stream: (frame, whether it is the last, the symbol it attended to
        most, or None without attention `weights`); each stream's state moves on a frame."""
        import torch

        cfg = self.config
        outs = self.network.run_batch([{**s.state, cfg.memory: s.memory} for s in streams])
        made = []
        for stream, out in zip(streams, outs, strict=True):
            if stream.done:
                raise ValueError("a stream stepped after its last frame")
            frame = out[FRAME]
            stop = torch.sigmoid(out[STOP].reshape(())).item() > cfg.stop_threshold
            attended = int(out[WEIGHTS].argmax()) if WEIGHTS in out else None
            stream.made += 1
            stream.done = stop or stream.made == stream.cap
            stream.state = {n: out[n] for n in self._state}
            stream.state[PREV_FRAME] = frame
            made.append((frame, stream.done, attended))
        return made

    def frames(self, memory) -> Iterator:
        """Every frame the decoder makes for `memory`, one at a time (the autoregressive loop,
        as a batch of one stream): (frame, last, the symbol it attended to most, or None)."""
        stream = self.start({self.config.memory: memory})
        while not stream.done:
            (made,) = self.step([stream])
            yield made

    def chunks(self, frames: Iterable[tuple[Any, bool, int | None]]) -> Iterator[Chunk]:
        """The stream's chunks from its frames as `step` (or `frames`) makes them: every
        `chunk_frames` frames, with the symbol each attended to (`marks`, word timestamps)."""
        import torch

        pending: list = []
        attended: list = []  # the symbol each pending frame attended to
        start = 0
        n = self.config.chunk_frames
        for frame, last, symbol in frames:
            pending.append(frame)
            attended.append(symbol)
            # Hold one frame back, so that when the stop token comes the last chunk is not empty.
            if len(pending) > n and not last:
                out, pending = pending[:n], pending[n:]
                marks, attended = _marks(attended[:n]), attended[n:]
                yield Chunk(torch.stack(out), start=start, marks=marks)
                start += len(out)
            if last:
                yield Chunk(torch.stack(pending), start=start, is_last=True, marks=_marks(attended))
                return

    def stream(self, features: Features, upstream: Iterator[Chunk] | None) -> Iterator[Chunk]:
        return self.chunks(self.frames(features[self.config.memory]))

    @property
    def reports_alignment(self) -> bool:
        return WEIGHTS in {t.name for t in self.network.spec.outputs}


@dataclass(eq=False)
class DecoderStream:
    """One utterance's loop between steps: what it attends over, its recurrent state, how many
    frames it has made, and whether the last of them was its last."""

    memory: Any
    state: dict[str, Any]
    cap: int
    made: int = 0
    done: bool = False


def _marks(attended: list) -> tuple[int, ...] | None:
    return None if any(a is None for a in attended) else tuple(attended)
