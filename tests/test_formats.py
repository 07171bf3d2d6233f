"""The streaming endpoint's byte formats carry exactly the audio (and mel) a voice produced."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import wave

import msgpack
import numpy as np
import pytest
from voicestack.serve_app.formats import (
    COMPRESSED,
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


@pytest.mark.parametrize("fmt", ["MP3", "WAV", "", "ogg", "m4a"])
def test_an_unknown_format_is_refused_naming_the_known_ones(fmt):
    for make in (lambda: StreamEncoder(fmt, RATE), lambda: media_type(fmt, RATE)):
        with pytest.raises(ValueError) as err:
            make()
        for known in FORMATS:
            assert known in str(err.value)


def test_each_format_has_its_content_type():
    assert FORMATS == ("wav", "pcm", "msgpack", "mp3", "opus", "aac", "flac")
    assert MEDIA_TYPES == {
        "wav": "audio/wav",
        "pcm": "audio/pcm",
        "msgpack": "application/x-msgpack",
        "mp3": "audio/mpeg",
        "opus": "audio/ogg",
        "aac": "audio/aac",
        "flac": "audio/flac",
    }
    for fmt in COMPRESSED:
        assert StreamEncoder(fmt, RATE).media_type == MEDIA_TYPES[fmt]
    assert media_type("wav", RATE) == "audio/wav"
    assert media_type("msgpack", RATE) == "application/x-msgpack"
    assert media_type("pcm", 16000) == "audio/pcm;rate=16000;channels=1;format=s16le"


# Compressed formats: MP3, Ogg Opus, AAC (ADTS) and FLAC, decoded by FFmpeg through PyAV.

#: How many samples (at the input's rate) longer than its input a decoded stream may be.
#: MP3 and ADTS cannot say how much silence their codec added, so decoders play it: the
#: encoder's delay (MP3: LAME's 576 samples and the decoder's 529, 1105 in all; AAC: 1024 of
#: priming) and the last frame's padding, under one frame (AAC: 1024 samples; MP3: 1152, or 576
#: at 24 kHz and below, and LAME's flush adds up to a frame more). Measured at 16, 22.05 and
#: 44.1 kHz over input lengths a few samples apart: MP3 1166 to 2290, AAC 1024 to 2042.
#: Ogg Opus states its pre-skip (312 samples at 48 kHz) and its last sample's position, and
#: decoders trim both: only the resampling to an Opus rate rounds (measured within 0.5 sample).
#: FLAC is exact.
EXTRA_SAMPLES = {
    "mp3": (0, 1105 + 2 * 1152),
    "aac": (0, 1024 + 1024),
    "opus": (-1, 1),
    "flac": (0, 0),
}

#: The least correlation of a lossy decode with its input (aligned at its delay). A lost,
#: shifted or garbled stretch of a 3 s signal falls far below; the codecs at their speech
#: bitrates measure on this signal: MP3 (64k) 0.99999, AAC (64k) 0.9990, Opus (32k) 0.998.
MIN_CORRELATION = 0.98


def voice_like(seconds: float, rate: int = RATE) -> np.ndarray:
    """A stand-in for voiced speech: a harmonic series (the pitch gliding between 100 and
    180 Hz, harmonics falling 6 dB an octave up to 4 kHz) in bursts of 250 ms with pauses."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 4000 // 180 + 1))
    syllables = np.sqrt(np.clip(np.sin(2 * np.pi * 2 * t), 0, None))
    return (0.25 * harmonics * syllables).astype(np.float32)


def encode(fmt: str, audio: np.ndarray, rate: int = RATE, seed: int = 0) -> list[tuple[int, bytes]]:
    """Each call's bytes with the count of samples given by then: start, one audio call per
    chunk of 1 to 4000 samples, end."""
    enc = StreamEncoder(fmt, rate)
    out, given = [(0, enc.start())], 0
    sizes = np.random.default_rng(seed)
    while given < len(audio):
        n = int(sizes.integers(1, 4000))
        out.append((min(given + n, len(audio)), enc.audio(audio[given : given + n], given)))
        given += n
    out.append((given, enc.end({"samples": given})))
    return out


def decode(body: bytes) -> tuple[int, np.ndarray]:
    """(sample rate, samples) of a whole body: int16 for FLAC, float32 for the lossy codecs."""
    import av

    with av.open(io.BytesIO(body)) as container:
        frames = list(container.decode(audio=0))
    assert {f.layout.name for f in frames} == {"mono"}
    return frames[0].sample_rate, np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


def best_alignment(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> tuple[float, int]:
    """(correlation, lag): the decoded signal's lag behind the reference at which the two
    correlate best, and that (gain-free) correlation."""
    best = (-1.0, 0)
    for lag in range(max_lag + 1):
        a = reference[: len(decoded) - lag].astype(np.float64)
        b = decoded[lag : lag + len(a)].astype(np.float64)
        best = max(best, (float(a @ b / np.sqrt((a @ a) * (b @ b))), lag))
    return best


@pytest.mark.parametrize("rate", [16000, 22050, 44100])
@pytest.mark.parametrize("fmt", COMPRESSED)
def test_a_compressed_stream_decodes_to_the_length_of_its_input_give_or_take_codec_padding(
    fmt, rate
):
    audio = voice_like(3.0, rate)
    body = b"".join(data for _, data in encode(fmt, audio, rate))
    decoded_rate, decoded = decode(body)
    extra = len(decoded) * rate / decoded_rate - len(audio)  # in samples at the input's rate
    low, high = EXTRA_SAMPLES[fmt]
    assert low <= extra <= high, (fmt, rate, decoded_rate, extra)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac"])
def test_a_lossy_stream_carries_the_signal(fmt):
    import soxr

    audio = voice_like(3.0)
    decoded_rate, decoded = decode(b"".join(data for _, data in encode(fmt, audio)))
    # Opus decodes at 48 kHz whatever it was given: compare at the decoded rate.
    reference = audio if decoded_rate == RATE else soxr.resample(audio, RATE, decoded_rate)
    max_lag = EXTRA_SAMPLES[fmt][1] * decoded_rate // RATE
    correlation, lag = best_alignment(reference, decoded, max_lag)
    assert correlation >= MIN_CORRELATION, (correlation, lag)


def test_flac_is_lossless_after_pcm16_quantisation():
    audio = samples(3 * RATE, seed=5) * 0.8  # white noise: nothing for a predictor to lean on
    audio[1000:1100] = 1.5  # clipped like every other format's samples
    decoded_rate, decoded = decode(b"".join(data for _, data in encode("flac", audio)))
    assert decoded_rate == RATE
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, np.frombuffer(pcm16(audio), dtype="<i2"))


@pytest.mark.parametrize("fmt", COMPRESSED)
def test_a_compressed_stream_sends_bytes_as_the_audio_comes_not_at_its_end(fmt):
    audio = voice_like(3.0)
    calls = encode(fmt, audio)
    header = calls[0][1]
    audio_calls, end = calls[1:-1], calls[-1][1]
    # Within the first half second of input, encoded audio is out (beyond any header).
    assert sum(len(data) for given, data in audio_calls if given <= RATE // 2) > 0
    # And by the end, nearly all of it: end() only adds the frames the codec held back.
    before_end = sum(len(data) for _, data in audio_calls)
    assert before_end > 0.75 * (len(header) + before_end + len(end))


@pytest.mark.parametrize("fmt", COMPRESSED)
def test_how_the_audio_is_chunked_does_not_change_the_decoded_stream(fmt):
    """No seams: the codec and the resampler carry their state from chunk to chunk."""
    audio = voice_like(2.0)
    enc = StreamEncoder(fmt, RATE)
    whole = enc.start() + enc.audio(audio, 0) + enc.end({})
    chunked = b"".join(data for _, data in encode(fmt, audio, seed=7))
    (rate_a, a), (rate_b, b) = decode(whole), decode(chunked)
    assert rate_a == rate_b
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fmt", COMPRESSED)
def test_a_compressed_stream_cannot_carry_an_error_and_releases_its_codec(fmt):
    enc = StreamEncoder(fmt, RATE)
    assert not enc.carries_errors
    enc.start()
    enc.audio(voice_like(0.5), 0)
    assert enc.error("voice crashed", 500) == b""
    assert enc.mel(np.zeros((4, 80), np.float32), 0) == b""
    with pytest.raises(RuntimeError, match="closed"):
        enc.audio(voice_like(0.1), RATE // 2)


def test_importing_the_formats_or_making_an_encoder_does_not_load_pyav():
    """PyAV (and FFmpeg's libraries) load when a compressed stream starts, and only then."""
    code = (
        "import sys, pickle\n"
        "from voicestack.serve_app.formats import StreamEncoder\n"
        "enc = StreamEncoder('mp3', 22050)\n"
        "pickle.dumps(enc)\n"
        "assert 'av' not in sys.modules, 'av imported'\n"
        "enc.start()\n"
        "assert 'av' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
