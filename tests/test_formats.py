"""The streaming endpoint's byte formats carry exactly the audio (and mel) a voice produced."""

from __future__ import annotations

import io
import struct
import wave

import msgpack
import numpy as np
import pytest
from voicestack.serve_app.formats import (
    FORMATS,
    MEDIA_TYPES,
    UNKNOWN_SIZE,
    StreamEncoder,
    decode_msgpack_stream,
    media_type,
    pcm16,
    wav_header,
)

RATE = 22050


def samples(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, n).astype(np.float32)


def from_pcm16(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0


def header_fields(header: bytes) -> dict:
    names = (
        "riff",
        "riff_size",
        "wave",
        "fmt",
        "fmt_size",
        "format_tag",
        "channels",
        "sample_rate",
        "byte_rate",
        "block_align",
        "bits",
        "data",
        "data_size",
    )
    return dict(zip(names, struct.unpack("<4sI4s4sIHHIIHH4sI", header), strict=True))


def test_pcm16_round_trips_each_sample_within_one_step_of_16_bit_resolution():
    audio = samples(5000)
    data = pcm16(audio)
    assert len(data) == 2 * len(audio)
    assert np.max(np.abs(from_pcm16(data) - audio)) <= 1 / 32767


def test_pcm16_is_little_endian_and_rounds_to_the_nearest_step():
    audio = np.array([0.0, 1.0, -1.0, 0.5, 1.6 / 32767, 1.4 / 32767], dtype=np.float32)
    assert pcm16(audio) == struct.pack("<6h", 0, 32767, -32767, 16384, 2, 1)


def test_pcm16_clips_samples_outside_the_unit_range_and_silences_nan():
    audio = np.array([3.0, -7.5, 1.0001, np.nan, np.inf, -np.inf], dtype=np.float32)
    assert np.frombuffer(pcm16(audio), "<i2").tolist() == [32767, -32767, 32767, 0, 32767, -32767]


def test_pcm16_refuses_audio_that_is_not_mono():
    with pytest.raises(ValueError, match="mono"):
        pcm16(np.zeros((2, 10), dtype=np.float32))


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
def test_a_streaming_wav_header_describes_pcm16_mono_at_the_rate_with_unknown_length(rate):
    header = wav_header(rate)
    assert len(header) == 44
    fields = header_fields(header)
    assert (fields["riff"], fields["wave"], fields["fmt"], fields["data"]) == (
        b"RIFF",
        b"WAVE",
        b"fmt ",
        b"data",
    )
    assert fields["fmt_size"] == 16 and fields["format_tag"] == 1
    assert fields["sample_rate"] == rate
    assert fields["channels"] == 1
    assert fields["bits"] == 16
    assert fields["block_align"] == 2
    assert fields["byte_rate"] == rate * 2
    assert fields["riff_size"] == fields["data_size"] == UNKNOWN_SIZE == 0xFFFFFFFF


def test_a_wav_header_with_a_known_length_reads_back_with_the_stdlib_exactly():
    audio = samples(1234)
    data = pcm16(audio)
    blob = wav_header(RATE, data_bytes=len(data)) + data
    fields = header_fields(blob[:44])
    assert fields["data_size"] == len(data)
    assert fields["riff_size"] == len(blob) - 8
    with wave.open(io.BytesIO(blob)) as w:
        assert w.getnchannels() == 1
        assert w.getsampwidth() == 2
        assert w.getframerate() == RATE
        assert w.getnframes() == len(audio)
        assert w.readframes(w.getnframes()) == data


def test_a_wav_header_refuses_a_length_that_is_not_whole_samples_or_a_bad_rate():
    with pytest.raises(ValueError):
        wav_header(RATE, data_bytes=3)
    with pytest.raises(ValueError):
        wav_header(RATE, data_bytes=-2)
    with pytest.raises(ValueError):
        wav_header(0)


def test_a_wav_stream_starts_with_one_header_and_plays_back_its_samples():
    audio = samples(3000, seed=1)
    enc = StreamEncoder("wav", RATE)
    body = enc.start()
    start = 0
    for n in (700, 1, 1299, 1000):
        body += enc.audio(audio[start : start + n], start)
        start += n
    body += enc.mel(np.zeros((5, 80), np.float32), 0)
    body += enc.end({"samples": start})
    body += enc.error("late failure", 500)

    assert body.count(b"RIFF") == 1 and body.startswith(b"RIFF")
    assert header_fields(body[:44])["sample_rate"] == RATE
    assert len(body) == 44 + 2 * len(audio)
    assert np.max(np.abs(from_pcm16(body[44:]) - audio)) <= 1 / 32767
    # The stdlib reads the unknown-length header too; it just cannot know the frame count.
    with wave.open(io.BytesIO(body)) as w:
        assert w.getframerate() == RATE
        assert w.readframes(len(audio) + 100) == body[44:]


def test_a_pcm_stream_is_only_the_samples_with_the_rate_in_its_content_type():
    audio = samples(2000, seed=2)
    enc = StreamEncoder("pcm", RATE, with_mel=True)
    body = enc.start() + enc.audio(audio[:900], 0) + enc.audio(audio[900:], 900)
    body += enc.mel(np.ones((3, 80), np.float32), 0) + enc.end({"samples": 2000})
    body += enc.error("boom", 500)
    assert body == pcm16(audio)
    assert enc.media_type == "audio/pcm;rate=22050;channels=1;format=s16le"


def test_a_msgpack_stream_of_audio_mel_and_end_decodes_to_the_same_arrays():
    audio = samples(2500, seed=3)
    mel = np.random.default_rng(4).standard_normal((40, 80)).astype(np.float32)
    enc = StreamEncoder("msgpack", RATE, with_mel=True)
    timing = {"acoustic_ms": 12.5, "vocoder_ms": 3.0}
    body = enc.start()
    assert body == b""
    body += enc.mel(mel[:25], 0)
    body += enc.audio(audio[:1000], 0, timing=timing)
    body += enc.mel(mel[25:], 25)
    body += enc.audio(audio[1000:], 1000)
    body += enc.end({"samples": 2500, "frames": 40, "voice": "test-duration"})

    messages = decode_msgpack_stream(body)
    assert [m["type"] for m in messages] == ["mel", "audio", "mel", "audio", "end"]

    audio_msgs = [m for m in messages if m["type"] == "audio"]
    assert [m["start"] for m in audio_msgs] == [0, 1000]
    assert all(m["sample_rate"] == RATE for m in audio_msgs)
    assert audio_msgs[0]["timing"] == timing
    assert "timing" not in audio_msgs[1]
    decoded_audio = np.concatenate([from_pcm16(m["pcm16"]) for m in audio_msgs])
    assert np.max(np.abs(decoded_audio - audio)) <= 1 / 32767

    mel_msgs = [m for m in messages if m["type"] == "mel"]
    assert [(m["start"], m["frames"], m["n_mels"]) for m in mel_msgs] == [(0, 25, 80), (25, 15, 80)]
    decoded_mel = np.concatenate(
        [np.frombuffer(m["f32"], "<f4").reshape(m["frames"], m["n_mels"]) for m in mel_msgs]
    )
    np.testing.assert_array_equal(decoded_mel, mel)

    assert messages[-1] == {"type": "end", "samples": 2500, "frames": 40, "voice": "test-duration"}


def test_msgpack_messages_decode_one_by_one_as_bytes_arrive():
    enc = StreamEncoder("msgpack", RATE)
    parts = [enc.audio(samples(100), 0), enc.audio(samples(100, 1), 100), enc.end({"samples": 200})]
    body = b"".join(parts)
    unpacker = msgpack.Unpacker(raw=False)
    seen = []
    for i in range(0, len(body), 7):  # arbitrary network chunking
        unpacker.feed(body[i : i + 7])
        seen.extend(m["type"] for m in unpacker)
    assert seen == ["audio", "audio", "end"]
    assert [msgpack.unpackb(p, raw=False)["type"] for p in parts] == seen


def test_a_msgpack_stream_without_mel_leaves_mel_frames_out():
    enc = StreamEncoder("msgpack", RATE)
    assert enc.mel(np.zeros((4, 80), np.float32), 0) == b""


def test_a_msgpack_stream_reports_an_error_with_its_message_and_status():
    enc = StreamEncoder("msgpack", RATE)
    body = enc.audio(samples(10), 0) + enc.error("voice crashed mid-utterance", 503)
    messages = decode_msgpack_stream(body)
    assert messages[-1] == {
        "type": "error",
        "message": "voice crashed mid-utterance",
        "status": 503,
    }


@pytest.mark.parametrize("fmt", ["wav", "pcm"])
def test_raw_streams_cannot_carry_an_error_message(fmt):
    assert StreamEncoder(fmt, RATE).error("boom", 500) == b""


def test_decoding_a_truncated_msgpack_stream_fails_loudly():
    body = StreamEncoder("msgpack", RATE).audio(samples(50), 0)
    with pytest.raises(ValueError, match="truncated"):
        decode_msgpack_stream(body + body[:-1])


def test_end_totals_cannot_replace_the_message_type():
    with pytest.raises(ValueError, match="type"):
        StreamEncoder("msgpack", RATE).end({"type": "audio"})


@pytest.mark.parametrize("fmt", ["mp3", "WAV", "", "opus"])
def test_an_unknown_format_is_refused_naming_the_known_ones(fmt):
    for make in (lambda: StreamEncoder(fmt, RATE), lambda: media_type(fmt, RATE)):
        with pytest.raises(ValueError) as err:
            make()
        for known in FORMATS:
            assert known in str(err.value)


def test_each_format_has_its_content_type():
    assert FORMATS == ("wav", "pcm", "msgpack")
    assert MEDIA_TYPES == {
        "wav": "audio/wav",
        "pcm": "audio/pcm",
        "msgpack": "application/x-msgpack",
    }
    assert media_type("wav", RATE) == "audio/wav"
    assert media_type("msgpack", RATE) == "application/x-msgpack"
    assert media_type("pcm", 16000) == "audio/pcm;rate=16000;channels=1;format=s16le"
