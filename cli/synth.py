"""`voicestack synth` for long work: text from a file or standard input, made by the voice in
this process or by a running service (`--url`), written to the audio file as it is made, with
a progress bar on a terminal (characters spoken, audio made, real-time factor) and nothing on
a pipe.

Both sources give the same events: audio samples, each word with its span in the text (where
the voice reports words), and how far into the text the speech is: a sentence at a time in
process, a word's start from a service (which says where words are, not how many sentences
there are).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


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
    from voicestack.blocks.chunk import Chunk
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
                        yield Audio(pcm.astype(np.float32) / 32767)
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
