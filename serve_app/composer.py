"""The voice deployment: composes a voice's block deployments from its plan and streams audio.

The composer drives; the data flows past it. For each sentence it runs the front end (host work),
hands the features to the sequence deployments, opens the source's stream, and for each chunk
reference the source yields it calls the chunk steps in turn, passing each call's response to
the next. Ray hands the intermediate frames from replica to replica; the composer only fetches
the final audio (and the mel, when a client asks for it).

Pipelining comes from not waiting: every chunk's calls are submitted as soon as the source
yields it, so the decoder works on chunk k while the vocoder works on chunk k-1, and the next
sentence's encoders are started as soon as this sentence starts streaming. A bounded queue of
chunks in flight keeps one long text from flooding the replicas that other streams share.

Blocks after a stateful consumer (a segment head other than the source, e.g. Diagnostics) run
here in the composer, on fetched chunks: such a block needs the whole stream in order, which a
pool of replicas cannot give it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from voicestack.blocks import REGISTRY
from voicestack.blocks.core.request import RequestOptions, VoiceRequest
from voicestack.blocks.core.streamable import StreamableBlock
from voicestack.blocks.errors import ServiceError
from voicestack.blocks.text.words import AlignedWords, TextSpans
from voicestack.runtime.plan import Plan
from voicestack.serve_app import metrics
from voicestack.serve_app.admission import Admission, Overloaded
from voicestack.serve_app.deployments import COMPOSER
from voicestack.serve_app.retry import attempts

logger = logging.getLogger("voicestack.serve")

#: Chunks of one stream whose calls may be in flight at once.
MAX_AHEAD = 8


class Playback:
    """When one request's listener runs out of audio, if playback starts at the first chunk and
    runs in real time: the deadline each chunk's calls carry, so that replicas serve the stream
    nearest to running dry first (a new request: at once)."""

    #: Audio a chunk holds before any has been sent (a first chunk is small, ~16 frames).
    FIRST_CHUNK_S = 0.2

    def __init__(self) -> None:
        self.requested = time.time()
        self.first: float | None = None
        self.audio_s = 0.0
        self.sent_chunks = 0
        self.submitted = 0

    def deadline(self) -> float:
        """When the listener has played everything sent so far."""
        return self.requested if self.first is None else self.first + self.audio_s

    def next_chunk(self) -> float:
        """The deadline of the next chunk submitted: the chunks in flight ahead of it play
        first (each estimated at the average sent so far), so a stream's eighth chunk in flight
        does not go ahead of another stream's first."""
        ahead = self.submitted - self.sent_chunks
        each = self.audio_s / self.sent_chunks if self.sent_chunks else self.FIRST_CHUNK_S
        self.submitted += 1
        return self.deadline() + ahead * each

    def sent(self, seconds: float) -> None:
        if self.first is None:
            self.first = time.time()
        self.audio_s += seconds
        self.sent_chunks += 1


#: What a composer says once at start, through every block, before it takes requests.
WARM_UP_TEXT = "Hello."


class Composer:
    async def __init__(self, plan: dict[str, Any], handles: dict[str, Any]):  # type: ignore[misc]
        # (Serve awaits an async constructor: the warm-up runs before the replica is ready.)
        self._build(Plan.from_dict(plan), handles)
        await self._warm_up()

    def _build(self, plan: Plan, handles: dict[str, Any]) -> None:
        """`plan`: the voice's (runtime/plan.py); `handles`: a DeploymentHandle per leaf
        deployment's key (serve_app/deployments.py; a grouped leaf's: ("app", "deployment")
        to look up). Fused leaves have none: they are built and run here."""
        from voicestack.blocks.text.frontend import TextFrontend
        from voicestack.serve_app.deployments import leaf_deployments
        from voicestack.serve_app.leaf import server_for
        from voicestack.serve_app.leaf_calls import Deployed, Fused

        self.plan = plan
        self.name = plan.name
        data = plan.to_dict()
        env = plan.env()
        frontend = REGISTRY.build(plan.frontend, "frontend", env)
        if not isinstance(frontend, TextFrontend):
            raise TypeError(f"voice {self.name!r}: its front end is not a TextFrontend")
        self.frontend = frontend
        streams = plan.placement.for_block(COMPOSER, voice=self.name).streams
        self.admission = Admission(
            streams.max_active,
            streams.max_waiting,
            streams.max_wait_s,
            streams.retry_after_s,
            changed=metrics.streams(self.name),
        )
        self.warming = False  # the warm-up's request is no client's: not in the metrics
        #: How each leaf is called, by its deployment's key: through its handle, or here.
        self.leaves: dict[str, Deployed | Fused] = {}
        by_path: dict[str, Deployed | Fused] = {}
        for d in leaf_deployments(plan):
            leaf: Deployed | Fused
            if d.fused:
                leaf = Fused(server_for(d.kind)([(data, d.leaf.path)]))
            else:
                leaf = Deployed(_handle(handles[d.key]))
            self.leaves[d.key] = by_path[d.leaf.path] = leaf
        first, *rest = plan.segments
        self.first = first
        #: The sequence leaves' deployments, in order; the source's; the first segment's steps'.
        self.sequence = [by_path[leaf.path] for leaf in plan.sequence]
        self.source = by_path[first.head.path]
        self.steps = [(by_path[step.leaf.path], step) for step in first.steps]
        # A source that knows each symbol's frames (a duration model's upsampler), built here
        # as well unless it is fused here already: word timestamps are made from it.
        self.timeline: StreamableBlock | None = None
        if plan.times_symbols:
            fused_source = self.source.server if isinstance(self.source, Fused) else None
            source = (
                fused_source.blocks[self.name]
                if fused_source is not None
                else first.head.build(env)
            )
            assert isinstance(source, StreamableBlock)  # the head of a segment
            self.timeline = source
        #: Whether the source's chunks carry its alignment (an attention decoder's `marks`).
        self.aligned = plan.reports_alignment
        #: Later segments run here (see the module docstring).
        self.tail = [segment.built(env) for segment in rest] or None

    async def _warm_up(self) -> None:
        """Synthesize a word through the whole chain, so the first client does not pay for the
        handles' first calls (docs/benchmarks.md, start-up), and the voice is only marked running once its
        blocks really answer."""
        t0 = time.perf_counter()
        self.warming = True
        try:
            async for message in self.synthesize(WARM_UP_TEXT):
                if message["type"] == "error":
                    raise ValueError(message["message"])
        except ValueError as e:  # a voice whose front end cannot read the warm-up text
            logger.warning("voice %s: warm-up skipped: %s", self.name, e)
            return
        finally:
            self.warming = False
        logger.info("voice %s warmed up in %.2f s", self.name, time.perf_counter() - t0)

    def describe(self) -> dict[str, Any]:
        """The voice as `GET /v1/voices` lists it: its plan less the composer's own parts, its
        speakers' names in id order, whether a request may change its speed, and whether its
        streams carry word timestamps."""
        from voicestack.blocks.core.request import SPEED

        plan = self.plan
        return {
            "name": plan.name,
            "addon_path": plan.addon_path,
            "architecture": plan.architecture,
            "language": plan.language,
            "sample_rate": plan.sample_rate,
            "hop_length": plan.hop_length,
            "n_mels": plan.n_mels,
            "placement": plan.placement.model_dump(mode="json", exclude_unset=True),
            "frontend": plan.frontend,
            "stack": plan.stack,
            "speakers": plan.speaker_names,
            "speed": SPEED in plan.reads,
            "word_timestamps": plan.times_symbols or plan.reports_alignment,
        }

    async def where(self) -> dict[str, Any]:
        """Where each of this voice's leaves runs: {key: one replica's info, `fused` where it
        runs in this composer's process} (tests)."""
        return {key: await leaf.where() for key, leaf in self.leaves.items()}

    async def synthesize(
        self, text: str, with_mel: bool = False, options: RequestOptions | None = None
    ) -> AsyncIterator[dict]:
        """Messages for one request: {"type": "audio", ...} and {"type": "mel", ...} as they are
        made, then {"type": "end", ...}; or {"type": "error", ...}, first if the request is bad
        or the voice is at capacity (status 503, with `retry_after_s`). `options`: the seed
        that fixes a generative voice's noise (without one a seed is drawn, and the end message
        says it), the speaker, the speed (blocks/core/request.py)."""
        from voicestack.blocks.core.request import for_voice
        from voicestack.blocks.errors import RequestError

        recorded = metrics.Stream(self.name, self.plan.sample_rate, record=not self.warming)
        try:
            request = for_voice(
                options or RequestOptions(), self.name, self.plan.reads, self.plan.speakers
            )
        except RequestError as e:
            recorded.error(e.status)
            yield e.as_message()
            return
        try:
            async with self.admission.slot():
                recorded.admit(len(text))
                async for message in self._synthesize(text, with_mel, request):
                    kind = message["type"]
                    if kind == "audio":
                        recorded.audio(message["samples"].shape[0])
                    elif kind == "end":
                        recorded.done()
                    elif kind == "error":
                        recorded.error(message["status"])
                    yield message
        except Overloaded as e:
            recorded.shed()
            yield ServiceError(
                503,
                f"voice {self.name!r} is {e}",
                code="voice_at_capacity",
                headers={"Retry-After": str(e.retry_after_s)},
            ).as_message()
        except (asyncio.CancelledError, GeneratorExit):  # the client went away
            recorded.gone()
            raise
        except BaseException:
            recorded.error(500)
            raise

    async def complete(self, text: str) -> int:
        """How much of `text` (characters from its start) is whole sentences, as this voice's
        front end cuts them: text that arrives as it is written (the WebSocket route) is
        spoken a sentence at a time, each once the next one has begun, so that it is cut
        where the whole text would be. 0 until a second sentence begins."""
        sentences = await asyncio.to_thread(self.frontend.sentences, text)
        if len(sentences) < 2:
            return 0
        spans = await asyncio.to_thread(TextSpans, text, sentences, self.frontend.rewrite)
        start = spans.span(len(sentences) - 1, 0)  # the last sentence's first word
        return start[0] if start is not None else 0

    def load(self) -> dict[str, int]:
        """Streams playing and waiting in this replica (tests, diagnostics)."""
        return {"active": self.admission.active, "waiting": self.admission.waiting}

    async def _synthesize(
        self, text: str, with_mel: bool, request: VoiceRequest
    ) -> AsyncIterator[dict]:
        t0 = time.perf_counter()
        try:
            sentences = await asyncio.to_thread(self.frontend.sentences, text)
        except ValueError as e:
            yield _refused(str(e))
            return
        if not sentences:
            yield _refused("nothing to say: the text has no speakable sentence")
            return
        first_audio_s = None
        playback = Playback()
        # Where each sentence's words are in the text, found while the first sentence is
        # encoded (a voice that knows no word times skips it).
        spans = (
            asyncio.create_task(
                asyncio.to_thread(TextSpans, text, sentences, self.frontend.rewrite)
            )
            if self.timeline is not None or self.aligned
            else None
        )
        prepared = asyncio.create_task(self._prepare(sentences, 0, request))
        index = 0
        while prepared is not None:
            try:
                index, features, written, frontend = await prepared
            except ValueError as e:
                yield _refused(str(e))
                return
            if features is None:
                if playback.sent_chunks == 0:
                    # Sentences were found, but none had anything to say (emoji, a script the
                    # voice cannot read): an error before any audio, never an empty file.
                    yield _refused("nothing to say: no sentence of the text is speakable")
                    return
                break
            # The next sentence is prepared once this one's first chunk is here, not before:
            # its encoders would otherwise compete with this sentence's first chunk (TTFA for
            # a 26-sentence text was 1.38 times a one-sentence text's).
            following: asyncio.Task | None = None
            words = (
                asyncio.create_task(
                    self._words(index, written, features, frontend, spans, playback.audio_s, text)
                )
                if spans is not None
                else None
            )
            # An attention voice's words come with its chunks, each once its end is made.
            align: Any = None
            try:
                async for audio, mel in self._made_again(features, frontend, with_mel, playback):
                    if following is None:
                        following = asyncio.create_task(
                            self._prepare(sentences, index + 1, request)
                        )
                    if words is not None:  # a sentence's words before its first audio
                        done = await words
                        if isinstance(done, AlignedWords):
                            align = done
                        else:
                            for word in done:
                                yield {"type": "word", "sentence": index, **word}
                        words = None
                    if align is not None:
                        ended = align.feed(audio.marks or ())
                        ended += align.finish() if audio.is_last else []
                        for word in ended:
                            yield {"type": "word", "sentence": index, **word}
                    # Sentences started when this chunk leaves: the client can see that
                    # sentence n+1 was encoded while sentence n streamed, and no further.
                    started = min(len(sentences), index + 2)
                    now = time.perf_counter() - t0
                    first_audio_s = now if first_audio_s is None else first_audio_s
                    if mel is not None:
                        yield {
                            "type": "mel",
                            "sentence": index,
                            "start": mel.start,
                            "frames": mel.core.numpy(),
                        }
                    samples = audio.core[:, 0].numpy()
                    playback.sent(samples.shape[0] / self.plan.sample_rate)
                    yield {
                        "type": "audio",
                        "sentence": index,
                        "start": audio.start,
                        "samples": samples,
                        "timing": {"ready_s": round(now, 4), "sentences_started": started},
                    }
            except BaseException:
                for task in (following, words, spans):
                    if task is not None:
                        task.cancel()
                raise
            prepared = following or asyncio.create_task(
                self._prepare(sentences, index + 1, request)
            )
        yield {
            "type": "end",
            "sentences": len(sentences),
            "chunks": playback.sent_chunks,
            "audio_s": round(playback.audio_s, 4),
            "first_audio_s": first_audio_s,
            "wall_s": round(time.perf_counter() - t0, 4),
            "seed": request.seed,
        }

    async def _words(
        self,
        index: int,
        written: list,
        features: Any,
        frontend: dict[str, Any],
        spans: asyncio.Task,
        offset_s: float,
        text: str,
    ) -> list[dict] | AlignedWords:
        """Sentence `index`'s words (`written`: the front end's `words`) with their times in
        the stream (blocks/text/words.py), from its durations as the sequence deployments predicted
        them (the one thing fetched from them); or, for a voice whose chunks carry its
        alignment, what reads them from the chunks."""
        from voicestack.blocks.text.words import timed_words

        found = await spans
        if self.timeline is None:  # words read from the chunks' alignment as they come
            return AlignedWords(
                written,
                self.plan.hop_length / self.plan.sample_rate,
                offset_s,
                lambda number: found.span(index, number),
                text,
            )
        features = await self._fetched_features(features, frontend)
        frames = self.timeline.symbol_frames(features)
        assert frames is not None  # a source that times symbols answers
        return timed_words(
            written,
            frames,
            self.plan.hop_length / self.plan.sample_rate,
            offset_s,
            lambda number: found.span(index, number),
            text,
        )

    async def _prepare(self, sentences: list[str], index: int, request: VoiceRequest):
        """Front end, then the sequence deployments, for the first speakable sentence from
        `index` on. Returns (its index, a response holding its features, the front end's
        `words`, the front end's features), or (index, None, None, None)."""
        from voicestack.blocks.text.frontend import NothingToSayError

        while index < len(sentences):
            try:
                features = dict(
                    await asyncio.to_thread(self.frontend.__call__, {"text": sentences[index]})
                )
            except NothingToSayError:
                index += 1
                continue
            features.update(request.features(index))
            return index, self._encoded(features), features["words"], features
        return index, None, None, None

    async def _fetched_features(self, features: Any, frontend: dict[str, Any]) -> Any:
        """The sentence's features from the sequence deployments, asked again (from its front
        end's features) while a replica that held them has died."""
        async for attempt in attempts():
            with attempt:
                if attempt.number:
                    features = self._encoded(dict(frontend))
                return await features if hasattr(features, "__await__") else features
        raise AssertionError("unreachable: the last try's error is raised")

    def _encoded(self, features: dict[str, Any]) -> Any:
        """A response holding `features` through the sequence deployments (not awaited)."""
        response: Any = features
        for leaf in self.sequence:
            response = leaf.sequence(self.name, response)
        return response

    async def _made_again(
        self, features: Any, frontend: dict[str, Any], with_mel: bool, playback: Playback
    ) -> AsyncIterator[tuple[Any, Any]]:
        """`_sentence`, made again from its front end's features when a replica dies under it:
        blocks are pure and a request's noise is seeded, so the sentence's chunks come again
        as they were, and those the client already has are skipped. A stream that loses work
        thus completes whole; after the last try the error is raised (the stream says it
        failed)."""
        sent = 0

        def lost(error: BaseException, delay: float) -> None:
            metrics.retried(self.name)
            logger.warning(
                "voice %s: a replica died under a sentence (%s chunks sent); made again "
                "in %.1f s: %s",
                self.name,
                sent,
                delay,
                type(error).__name__,
            )

        async for attempt in attempts(on_lost=lost):
            with attempt:
                if attempt.number:
                    features = self._encoded(dict(frontend))
                made = 0
                async for item in self._sentence(features, with_mel, playback):
                    made += 1
                    if made > sent:
                        sent = made
                        yield item
                return

    async def _sentence(
        self, features: Any, with_mel: bool, playback: Playback
    ) -> AsyncIterator[tuple[Any, Any]]:
        """(audio chunk, mel chunk or None) of one sentence, in order."""
        stream = await self.source.open(self.name, features, self.first.need)
        mel_from_source = self.first.head.produces == "mel"
        pending: asyncio.Queue = asyncio.Queue(maxsize=MAX_AHEAD)
        in_flight: list[Any] = []

        async def pump() -> None:
            async for ref in stream:
                response, mel = ref, (ref if mel_from_source else None)
                deadline = playback.next_chunk()
                for leaf, step in self.steps:
                    response = leaf.apply(self.name, response, step.keep, deadline)
                    in_flight.append(response)
                    if step.leaf.produces == "mel":
                        mel = response
                await pending.put((response, mel))
            await pending.put(None)

        pumping = asyncio.create_task(pump())
        finished = False
        try:
            outputs = self._fetched(pending, with_mel)
            if self.tail is not None:
                outputs = self._through_tail(outputs, features)
            async for item in outputs:
                yield item
            await pumping  # surfaces an error the pump hit after its last chunk
            finished = True
        finally:
            if not finished:  # cancelled (the client left) or failed: stop all this stream's work
                pumping.cancel()
                stream.cancel()
                for response in in_flight:
                    if hasattr(response, "cancel"):
                        response.cancel()

    async def _fetched(self, pending: asyncio.Queue, with_mel: bool):
        while (item := await pending.get()) is not None:
            response, mel = item
            audio = await response
            yield audio, (await mel if with_mel and mel is not None else None)

    async def _through_tail(self, outputs: AsyncIterator, features: Any):
        """Run the later segments here, in a thread, on the first segment's fetched chunks."""
        from voicestack.runtime.plan import stream_segments

        features = await features if hasattr(features, "__await__") else features
        inbox: queue.Queue = queue.Queue()
        done = object()

        def upstream() -> Iterator[Any]:
            while (item := inbox.get()) is not done:
                yield item

        assert self.tail is not None  # only called where the voice has later segments
        stream = stream_segments(self.tail, features, upstream())
        results: queue.Queue = queue.Queue()

        def drive() -> None:
            try:
                for chunk in stream:
                    results.put(chunk)
                results.put(done)
            except BaseException as e:  # handed to the event loop below
                results.put(e)

        threading.Thread(target=drive, daemon=True, name=f"tail-{self.name}").start()
        try:
            async for audio, _mel in outputs:
                inbox.put(audio)
                while not results.empty():
                    item = results.get()
                    if isinstance(item, BaseException):
                        raise item
                    yield item, None
        finally:
            # Also when the client left or a chunk failed: the thread waiting for the next
            # chunk ends instead of waiting forever.
            inbox.put(done)
        while (item := await asyncio.to_thread(results.get)) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item, None


def _handle(h: Any) -> Any:
    if isinstance(h, (tuple, list)):
        from ray import serve

        app, deployment = h
        return serve.get_deployment_handle(deployment, app_name=app)
    return h


def _refused(message: str) -> dict:
    """The stream's error message for a request it cannot speak (a 400)."""
    return ServiceError(400, message).as_message()
