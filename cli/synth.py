"""`voicestack synth` for long work: text from a file or standard input, made by the voice in
this process or by a running service (`--url`), written to the audio file as it is made, with
a progress bar on a terminal (characters spoken, audio made, real-time factor) and nothing on
a pipe.

Both sources give the same events: audio samples, each word with its span in the text (where
the voice reports words), and how far into the text the speech is: a sentence at a time in
process, a word's start from a service (which says where words are, not how many sentences
there are). `write_audio` is the one loop that turns those events into a file, for `synth`
and `demo` alike.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from voicestack.runtime.pcm import PCM16_SCALE


@dataclass
class Audio:
    samples: np.ndarray  # float32 mono
    sentence_done: bool = False


@dataclass
class Spoken:
    """Progress: characters of the text spoken up to here."""

    characters: int


def local_events(voice, text: str, seed, speaker, speed) -> Iterator[Audio | Spoken | dict]:
    """The local runtime's events (runtime/local.py `synthesize_events`) as this module's."""
    from voicestack.blocks.core.chunk import Chunk
    from voicestack.runtime.local import synthesize_events

    sentences = max(1, len(voice.sentences(text)))
    done = 0
    for event in synthesize_events(voice, text, seed, speaker=speaker, speed=speed):
        if isinstance(event, Chunk):
            yield Audio(event.core[:, 0].numpy(), event.is_last)
            if event.is_last:
                done += 1
                yield Spoken(round(len(text) * done / sentences))
        else:
            yield event


def service_events(
    url: str, voice: str, text: str, seed, speaker, speed, api_key: str | None
) -> tuple[int, Iterator[Audio | Spoken | dict]]:
    """(sample rate, events) of `POST {url}/v1/synthesize` in msgpack, read as it streams.
    Raises ValueError with the service's message for a request it refuses."""
    import httpx
    import msgpack

    body = {"voice": voice, "text": text, "format": "msgpack", "speed": speed}
    body.update({k: v for k, v in (("seed", seed), ("speaker", speaker)) if v is not None})
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    client = httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(30, read=600))
    response = client.send(client.build_request("POST", "/v1/synthesize", json=body), stream=True)
    if response.status_code != 200:
        response.read()
        client.close()
        try:
            why = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            why = response.text
        raise ValueError(f"the service answered {response.status_code}: {why}")
    rate = int(response.headers["x-sample-rate"])

    def events() -> Iterator[Audio | Spoken | dict]:
        unpacker = msgpack.Unpacker(raw=False)
        ended = False
        try:
            for data in response.iter_bytes():
                unpacker.feed(data)
                for message in unpacker:
                    kind = message.get("type")
                    if kind == "audio":
                        pcm = np.frombuffer(message["pcm16"], dtype="<i2")
                        yield Audio(pcm.astype(np.float32) / PCM16_SCALE)
                    elif kind == "word":
                        if message.get("text_start") is not None:
                            yield Spoken(message["text_start"])
                        yield message
                    elif kind == "error":
                        raise RuntimeError(f"the service failed mid-stream: {message['message']}")
                    elif kind == "end":
                        ended = True
        finally:
            response.close()
            client.close()
        if not ended:
            raise RuntimeError("the service's stream ended before its end")

    return rate, events()


class Progress:
    """A progress bar over the text's characters on a terminal (tqdm), nothing elsewhere."""

    def __init__(self, characters: int, rate: int, stream=None):
        stream = stream or sys.stderr
        self.rate = rate
        self.samples = 0
        self.t0 = time.perf_counter()
        self.bar = None
        if stream.isatty() and os.environ.get("TERM") != "dumb":
            from tqdm import tqdm

            self.bar = tqdm(total=characters, unit="char", file=stream, dynamic_ncols=True)

    def audio(self, samples: int) -> None:
        self.samples += samples
        if self.bar is not None:
            made = self.samples / self.rate
            spent = time.perf_counter() - self.t0
            self.bar.set_postfix_str(f"{made:.1f} s audio, RTF {spent / max(made, 1e-9):.3f}")

    def spoken(self, characters: int) -> None:
        if self.bar is not None and characters > self.bar.n:
            self.bar.update(characters - self.bar.n)

    def close(self, complete: bool) -> None:
        if self.bar is not None:
            if complete:
                self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()


class Watcher(Protocol):
    """What `write_audio` tells as it writes: `Progress` on a terminal, `ChunkLog` for the demo."""

    def audio(self, samples: int) -> None: ...

    def spoken(self, characters: int) -> None: ...

    def close(self, complete: bool) -> None: ...


class ChunkLog:
    """`voicestack demo`'s lines: when each chunk arrived and how much audio it holds."""

    def __init__(self, name: str, rate: int, t0: float, stream=None):
        self.name, self.rate, self.t0 = name, rate, t0
        self.stream = stream or sys.stdout
        self.chunks = 0

    def audio(self, samples: int) -> None:
        ms = (time.perf_counter() - self.t0) * 1000
        print(
            f"{self.name}: chunk {self.chunks} ({samples / self.rate * 1000:.0f} ms of audio) "
            f"at {ms:.0f} ms",
            file=self.stream,
        )
        self.chunks += 1

    def spoken(self, characters: int) -> None:
        pass

    def close(self, complete: bool) -> None:
        pass


@dataclass
class Written:
    first_s: float  # from t0 to the first chunk
    chunks: int
    samples: int
    words: list[dict] = field(default_factory=list)


def write_audio(
    path: Path,
    fmt: str,
    rate: int,
    events: Iterable[Audio | Spoken | dict],
    watcher: Watcher,
    t0: float,
) -> Written:
    """Write the events' audio to `path` as it comes, in `fmt`, with the encoder the HTTP API
    streams with (serve_app/formats.py), telling `watcher` of each chunk and of the progress;
    the words are collected. A WAV file's header is rewritten at the end with its exact sizes
    (where the file can seek). A stream that fails part way leaves no file behind."""
    from voicestack.serve_app.formats import StreamEncoder, wav_header

    encoder = StreamEncoder(fmt, rate)
    written = Written(0.0, 0, 0)
    complete = False
    try:
        with path.open("wb") as out:
            out.write(encoder.start())
            for event in events:
                if isinstance(event, Spoken):
                    watcher.spoken(event.characters)
                    continue
                if not isinstance(event, Audio):
                    written.words.append({k: v for k, v in event.items() if k != "type"})
                    continue
                if written.chunks == 0:
                    written.first_s = time.perf_counter() - t0
                watcher.audio(event.samples.shape[0])
                out.write(encoder.audio(event.samples, written.samples))
                written.chunks += 1
                written.samples += event.samples.shape[0]
            out.write(encoder.end({"samples": written.samples, "chunks": written.chunks}))
            if fmt == "wav" and out.seekable():
                out.seek(0)
                out.write(wav_header(rate, data_bytes=2 * written.samples))
        complete = True
    except BaseException:
        if path.is_file() and not path.is_symlink():  # never /dev/stdout
            path.unlink()
        raise
    finally:
        watcher.close(complete)
    return written
