"""Compressed audio encoded as it is made: MP3, Ogg Opus, AAC (ADTS) and FLAC through PyAV.

One :class:`CompressedStream` is one response body (or one file). Each chunk of samples goes
through the codec and the container's muxer into an in-memory sink, and whatever bytes the
muxer has written by then are handed back at once, so a client hears the start of an
utterance while the rest is still being synthesized. :meth:`CompressedStream.close` flushes
the encoder (the frames it still holds back) and writes the container's trailer.

The choices, for speech (a mono TTS voice, typically at 16 to 24 kHz):

``mp3``
    LAME (``libmp3lame``), 64 kbit/s constant bitrate. Mono speech at 22.05 or 24 kHz
    (MPEG-2 layer III) is clean at 64k; lower rates start to smear sibilants, higher
    ones only cost bandwidth. 64k is also a bitrate every MPEG version allows, down to
    MPEG-2.5 at 8 kHz. No ID3 tag: a stream starts with its first MPEG frame.
``opus``
    ``libopus`` in Ogg, 32 kbit/s on average (variable: voiced, tonal stretches take more,
    pauses less). Opus is made for speech, and 28 to 40 kbit/s is its own recommendation
    for fullband speech. Opus only takes 8, 12, 16, 24 or 48 kHz, so a 22.05 kHz voice is
    resampled to 24 kHz. Ogg pages are cut every 100 ms of audio instead of FFmpeg's
    default second: a page header costs ~30 bytes, ~7% at this rate, and the muxer holds
    back its newest page (to mark the end of the stream), so some audio waits for the next
    chunk (docs/benchmarks.md, "start-up" gives how long).
``aac``
    FFmpeg's AAC-LC encoder in ADTS frames (each frame carries its own header, so a
    stream can be played from any point), 64 kbit/s: FFmpeg's own encoder needs more bits
    than LAME or Opus for the same quality, and is at its weakest at low bitrates.
``flac``
    Lossless: the decoded samples are exactly the PCM16 samples a ``wav`` stream carries.
    Streamed, its STREAMINFO header cannot be rewritten at the end, so it does not state
    the total sample count (players read until the end; nothing is lost).

Every format is fed the same PCM16 samples as ``wav`` and ``pcm`` (16-bit quantisation noise
is ~90 dB under the loudest speech, far below any codec's), at the source rate when the codec
takes it, else at the lowest rate it takes above it (nothing of the voice's band is cut), or
its highest. Rates change with libsoxr's streaming resampler, chunk by chunk, without seams.

Lossy codecs add a little silence: an encoder delay at the start (MP3 ~1105 samples with the
decoder's, AAC 1024) and padding to a whole frame at the end. MP3 and ADTS have no header
saying how much (a file could, once complete; a stream cannot), so decoders play it; Ogg Opus
states its pre-skip and final length, and decoders trim them.

PyAV is imported only here, and only when a stream is made, so that importing the formats
stays light; a stream holds PyAV objects and lives in the one process that made it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from voicestack.serve_app.formats import pcm16, resampler

__all__ = ["CODECS", "Codec", "CompressedStream", "encoding_rate"]


@dataclass(frozen=True)
class Codec:
    """How one format is made: FFmpeg's muxer and encoder, bitrate, muxer options."""

    container: str
    encoder: str
    #: Bits per second; ``None`` for a lossless codec.
    bit_rate: int | None
    options: dict[str, str] = field(default_factory=dict)


CODECS: dict[str, Codec] = {
    "mp3": Codec("mp3", "libmp3lame", 64_000, {"id3v2_version": "0"}),
    "opus": Codec("ogg", "libopus", 32_000, {"page_duration": "100000"}),  # microseconds
    "aac": Codec("adts", "aac", 64_000),
    "flac": Codec("flac", "flac", None, {"metadata_header_padding": "0"}),
}


def encoding_rate(source_rate: int, supported: Sequence[int] | None) -> int:
    """The rate to encode at: ``source_rate`` when the codec takes it (``supported`` is
    ``None`` when it takes any), else the lowest supported rate above it, else the highest.

    >>> encoding_rate(22050, [8000, 12000, 16000, 24000, 48000])
    24000
    >>> encoding_rate(96000, [22050, 44100, 48000])
    48000
    """
    if not supported or source_rate in supported:
        return source_rate
    above = [r for r in supported if r >= source_rate]
    return min(above) if above else max(supported)


class _Sink:
    """A write-only file for the muxer: bytes accumulate until taken. Not seekable, so FFmpeg
    writes each muxer as for a live stream (no header rewritten at the end)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class CompressedStream:
    """One compressed mono stream of ``fmt`` (a key of :data:`CODECS`), its samples given at
    ``sample_rate``. :meth:`start`, then :meth:`write` per chunk, then :meth:`close`; each
    returns the bytes that are ready. :meth:`abort` drops a stream that will not be finished.
    """

    def __init__(self, fmt: str, sample_rate: int) -> None:
        import av

        if fmt not in CODECS:
            raise ValueError(f"no compressed format {fmt!r}; expected one of {', '.join(CODECS)}")
        codec = CODECS[fmt]
        self.fmt = fmt
        self.source_rate = int(sample_rate)
        self.rate = encoding_rate(self.source_rate, av.Codec(codec.encoder, "w").audio_rates)
        self._sink = _Sink()
        # flush_packets: the muxer hands each packet to the sink at once, not per 32 KiB.
        options = {"flush_packets": "1", **codec.options}
        self._container = av.open(self._sink, mode="w", format=codec.container, options=options)
        try:
            self._stream = self._container.add_stream(codec.encoder, rate=self.rate)
            context = self._stream.codec_context
            context.layout = "mono"
            if codec.bit_rate is not None:
                context.bit_rate = codec.bit_rate
        except BaseException:
            self._container.close()
            raise
        self._resampler = resampler(self.source_rate, self.rate)
        self._time_base = Fraction(1, self.rate)
        self._pts = 0  # samples given to the encoder, at self.rate
        self._started = self._closed = False

    def start(self) -> bytes:
        """Open the encoder and write the container's header (Ogg's and FLAC's are bytes
        already; MP3 and ADTS have none)."""
        if not self._started:
            self._started = True
            self._container.start_encoding()
        return self._sink.take()

    def write(self, samples: np.ndarray) -> bytes:
        """Encode float mono samples in [-1, 1]; the bytes the codec has made so far."""
        audio = np.asarray(samples, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono audio of shape (samples,), got shape {audio.shape}")
        if self._resampler is not None:
            audio = self._resampler(audio)
        return self.start() + self._encode(audio)

    def close(self) -> bytes:
        """The end of the stream: the resampler's and encoder's last samples, the trailer."""
        if self._closed:
            raise RuntimeError(f"the {self.fmt} stream is closed")
        data = self.start()
        if self._resampler is not None:
            data += self._encode(self._resampler(None))
        self._mux(self._stream.encode(None))
        self._closed = True
        self._container.close()
        return data + self._sink.take()

    def abort(self) -> None:
        """Release the encoder of a stream that failed; its remaining bytes are dropped, and so
        is any error closing it raises (the stream is being given up already)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):  # nothing more to lose
                self._container.close()
            self._sink.take()

    def _encode(self, audio: np.ndarray) -> bytes:
        if self._closed:
            raise RuntimeError(f"the {self.fmt} stream is closed")
        if audio.shape[0]:
            import av

            pcm = np.frombuffer(pcm16(audio), dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = self.rate
            frame.time_base = self._time_base
            frame.pts = self._pts
            self._pts += pcm.shape[1]
            # PyAV cuts the frame to the codec's frame size and converts the sample format
            # (s16 to planar float or 32-bit for MP3 and AAC: exact), keeping the remainder.
            self._mux(self._stream.encode(frame))
        return self._sink.take()

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)
