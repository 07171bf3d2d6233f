"""Float audio becomes the same 16-bit samples whichever way it leaves: HTTP bodies (wav, pcm,
msgpack, flac), the files the CLI writes, and Wyoming (serve_app/formats.py's `pcm16`)."""

from __future__ import annotations

import io
import wave

import msgpack
import numpy as np
import pytest
from voicestack.cli.synth import Audio, Spoken, write_audio
from voicestack.runtime.pcm import pcm16
from voicestack.serve_app import formats
from voicestack.serve_app.formats import StreamEncoder

RATE = 22050
#: NaN, infinities, out of range, the edges, ordinary values, and ties to round.
AUDIO = np.array(
    [
        np.nan,
        np.inf,
        -np.inf,
        3.0,
        -7.5,
        1.0001,
        1.0,
        -1.0,
        0.0,
        0.5,
        -0.25,
        1.5 / 32767,
        2.5 / 32767,
    ],
    dtype=np.float32,
)
EXPECTED = [0, 32767, -32767, 32767, -32767, 32767, 32767, -32767, 0, 16384, -8192, 2, 2]


class Quiet:
    def audio(self, samples: int) -> None:
        pass

    def spoken(self, characters: int) -> None:
        pass

    def close(self, complete: bool) -> None:
        pass


def ints(data: bytes) -> list[int]:
    return np.frombuffer(data, dtype="<i2").tolist()


def test_the_conversion_silences_nan_clips_and_rounds_to_the_nearest_step_ties_to_even():
    assert ints(pcm16(AUDIO)) == EXPECTED


def test_the_service_converts_with_the_same_function():
    assert formats.pcm16 is pcm16


@pytest.mark.parametrize("fmt", ["wav", "pcm", "msgpack"])
def test_every_uncompressed_http_body_carries_the_same_samples(fmt):
    encoder = StreamEncoder(fmt, RATE)
    body = encoder.start() + encoder.audio(AUDIO[:5], 0) + encoder.audio(AUDIO[5:], 5)
    if fmt == "wav":
        body = body[44:]
    elif fmt == "msgpack":
        body = b"".join(m["pcm16"] for m in msgpack.Unpacker(io.BytesIO(body), raw=False))
    assert ints(body) == EXPECTED


def test_a_wav_file_the_cli_writes_carries_the_same_samples(tmp_path):
    path = tmp_path / "out.wav"
    events = [Audio(AUDIO[:4]), Spoken(3), {"type": "word", "word": "x"}, Audio(AUDIO[4:])]
    written = write_audio(path, "wav", RATE, events, Quiet(), 0.0)
    assert (written.chunks, written.samples, written.words) == (2, len(AUDIO), [{"word": "x"}])
    with wave.open(str(path)) as w:
        assert w.getnframes() == len(AUDIO)
        assert ints(w.readframes(len(AUDIO))) == EXPECTED


def test_a_flac_file_the_cli_writes_decodes_to_the_same_samples(tmp_path):
    import av

    path = tmp_path / "out.flac"
    write_audio(path, "flac", RATE, [Audio(AUDIO)], Quiet(), 0.0)
    with av.open(str(path)) as container:
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert decoded.tolist() == EXPECTED
