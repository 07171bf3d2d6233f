"""Byte encoders for the streaming HTTP endpoint ``POST /v1/synthesize``.

A request picks one of these output formats; this module turns the audio (and, for
``msgpack``, optional mel frames) that a voice produces chunk by chunk into the bytes the
response body streams:

``wav``
    One 44-byte RIFF/WAVE header (PCM16, mono) followed by raw samples. The total length
    is unknown when the header is sent, so its size fields hold ``0xFFFFFFFF``.
``pcm``
    Raw little-endian signed 16-bit mono samples and nothing else; the sample rate travels
    in the content type (``audio/pcm;rate=...;channels=1;format=s16le``) and the
    ``X-Sample-Rate`` header. Not ``audio/L16``: RFC 2586 makes L16 big-endian.
``msgpack``
    A sequence of independently packed msgpack maps, each with a ``"type"`` key
    (``audio``, ``mel``, ``word``, ``end`` or ``error``), so a client can decode messages with
    ``msgpack.Unpacker`` as bytes arrive and learn about errors that happen mid-stream.
``mp3``, ``opus``, ``aac``, ``flac``
    Compressed (MP3, Ogg Opus, AAC in ADTS, FLAC), encoded chunk by chunk as the audio
    comes, each chunk's bytes sent as soon as the codec makes them (serve_app/compressed.py
    says which codec, bitrate and rate each uses). Like ``wav`` and ``pcm`` they cannot tell
    of a failure mid-stream.

Only numpy and msgpack are needed here; samples become PCM16 in runtime/pcm.py (the one
conversion for every output), tensors are converted to numpy by the caller, and PyAV, for the
compressed formats, is imported when such a stream starts.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import numpy as np
from voicestack.runtime.pcm import pcm16  # the one float -> PCM16 conversion

#: Formats encoded by a codec (serve_app/compressed.py), not written out sample by sample.
COMPRESSED: tuple[str, ...] = ("mp3", "opus", "aac", "flac")
FORMATS: tuple[str, ...] = ("wav", "pcm", "msgpack", *COMPRESSED)
MEDIA_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "msgpack": "application/x-msgpack",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
}

#: Placeholder for RIFF and data chunk sizes when the stream length is unknown.
UNKNOWN_SIZE = 0xFFFFFFFF

_CHANNELS = 1
_SAMPLE_WIDTH = 2  # bytes per sample: PCM16
_HEADER_BYTES = 44

__all__ = [
    "COMPRESSED",
    "FORMATS",
    "MEDIA_TYPES",
    "UNKNOWN_SIZE",
    "Resampler",
    "StreamEncoder",
    "check_format",
    "decode_msgpack_stream",
    "media_type",
    "pcm16",
    "resampler",
    "wav_header",
]


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it is a known format, else raise ``ValueError`` naming the known ones."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown audio format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return fmt


def _check_sample_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise TypeError(f"sample_rate must be an int, got {type(sample_rate).__name__}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    return int(sample_rate)


def media_type(fmt: str, sample_rate: int) -> str:
    """The HTTP content type for ``fmt``; for ``pcm`` it carries the rate and channel count.

    >>> media_type("pcm", 22050)
    'audio/pcm;rate=22050;channels=1;format=s16le'
    """
    check_format(fmt)
    if fmt == "pcm":
        rate = _check_sample_rate(sample_rate)
        return f"{MEDIA_TYPES['pcm']};rate={rate};channels={_CHANNELS};format=s16le"
    return MEDIA_TYPES[fmt]


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """A 44-byte RIFF/WAVE header for PCM16 mono audio at ``sample_rate``.

    With ``data_bytes`` the header describes exactly that many bytes of samples. Without it
    the stream length is unknown when the header goes out (we send it before synthesis
    finishes), so the RIFF and ``data`` chunk sizes are set to ``0xFFFFFFFF``, the largest
    value the fields can hold. This is what streaming servers commonly do: players and
    decoders such as ffmpeg, browsers and sox then read samples until the connection
    closes. A size of 0 would instead tell strict readers there is no audio at all.
    Python's stdlib ``wave`` reads such a header but reports a meaningless frame count
    (2**31 - 1); give ``data_bytes`` when the length is known (e.g. for a file written
    after the fact) and the header is exact.
    """
    rate = _check_sample_rate(sample_rate)
    if data_bytes is None:
        riff_size = data_size = UNKNOWN_SIZE
    else:
        if isinstance(data_bytes, bool) or not isinstance(data_bytes, int | np.integer):
            raise TypeError(f"data_bytes must be an int, got {type(data_bytes).__name__}")
        data_size = int(data_bytes)
        if data_size < 0 or data_size % (_SAMPLE_WIDTH * _CHANNELS):
            raise ValueError(f"data_bytes must be a non-negative multiple of 2, got {data_size}")
        if data_size > UNKNOWN_SIZE - (_HEADER_BYTES - 8):
            raise ValueError(f"data_bytes {data_size} is too large for a RIFF header")
        riff_size = data_size + _HEADER_BYTES - 8
    block_align = _CHANNELS * _SAMPLE_WIDTH
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size for PCM
        1,  # WAVE_FORMAT_PCM
        _CHANNELS,
        rate,
        rate * block_align,  # byte rate
        block_align,
        _SAMPLE_WIDTH * 8,  # bits per sample
        b"data",
        data_size,
    )
    assert len(header) == _HEADER_BYTES
    return header


def _pack(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


class StreamEncoder:
    """Encodes one response stream in one format.

    Call :meth:`start` once, then :meth:`audio` (and :meth:`mel`) per chunk, then
    :meth:`end`, or :meth:`error` if synthesis fails part way; write every returned byte
    string to the response body in order (empty strings may be skipped).
    """

    def __init__(self, fmt: str, sample_rate: int, with_mel: bool = False) -> None:
        self.fmt = check_format(fmt)
        self.sample_rate = _check_sample_rate(sample_rate)
        self.with_mel = bool(with_mel)
        #: The codec of a compressed format, made (and PyAV imported) when the stream starts:
        #: it holds FFmpeg's state, so it lives in the one process that encodes.
        self._codec: Any = None

    def _compressed(self) -> Any:
        if self._codec is None:
            from voicestack.serve_app.compressed import CompressedStream

            self._codec = CompressedStream(self.fmt, self.sample_rate)
        return self._codec

    @property
    def media_type(self) -> str:
        """The content type of the response body."""
        return media_type(self.fmt, self.sample_rate)

    def start(self) -> bytes:
        """Bytes that open the stream: the WAV header for ``wav``, the container's header for
        ``opus`` and ``flac``, nothing otherwise."""
        if self.fmt in COMPRESSED:
            return self._compressed().start()
        return wav_header(self.sample_rate) if self.fmt == "wav" else b""

    def audio(self, samples: np.ndarray, start_sample: int, timing: dict | None = None) -> bytes:
        """One chunk of float mono samples that begins at ``start_sample`` in the utterance.

        ``timing`` (e.g. per-stage milliseconds) is only carried by ``msgpack``. A compressed
        format returns what the codec has encoded so far (it holds back a frame or so).
        """
        if self.fmt in COMPRESSED:
            return self._compressed().write(samples)
        data = pcm16(samples)
        if self.fmt != "msgpack":
            return data
        message: dict[str, Any] = {
            "type": "audio",
            "start": int(start_sample),
            "sample_rate": self.sample_rate,
            "pcm16": data,
        }
        if timing is not None:
            message["timing"] = dict(timing)
        return _pack(message)

    def mel(self, frames: np.ndarray, start_frame: int) -> bytes:
        """Mel frames of shape ``(time, n_mels)`` starting at ``start_frame``.

        Only ``msgpack`` streams created with ``with_mel=True`` carry them; otherwise ``b""``.
        """
        if self.fmt != "msgpack" or not self.with_mel:
            return b""
        array = np.asarray(frames, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"expected mel frames of shape (time, n_mels), got {array.shape}")
        return _pack(
            {
                "type": "mel",
                "start": int(start_frame),
                "n_mels": int(array.shape[1]),
                "frames": int(array.shape[0]),
                "f32": np.ascontiguousarray(array, dtype="<f4").tobytes(),
            }
        )

    def word(self, word: dict) -> bytes:
        """One word's times (blocks/text/words.py `timed_words`: word, read_as, start_s, end_s,
        text_start, text_end, sentence) as a ``msgpack`` ``word`` message, sent before the
        audio that holds the word; ``b""`` for the other formats."""
        if self.fmt != "msgpack":
            return b""
        return _pack({**word, "type": "word"})

    def end(self, totals: dict) -> bytes:
        """The closing ``msgpack`` message carrying ``totals``; for a compressed format, the
        codec's last frames and the container's trailer; ``b""`` for ``wav`` and ``pcm``."""
        if self.fmt in COMPRESSED:
            return self._compressed().close()
        if self.fmt != "msgpack":
            return b""
        if "type" in totals:
            raise ValueError("totals must not contain the key 'type'")
        return _pack({"type": "end", **totals})

    @property
    def carries_errors(self) -> bool:
        """Whether a failure after the start can be told in the stream itself (msgpack); in
        the raw and compressed formats the connection must be dropped instead."""
        return self.fmt == "msgpack"

    def error(self, message: str, status: int) -> bytes:
        """A ``msgpack`` error message; ``b""`` for the other formats, which cannot carry one
        (a compressed format's codec is released: the stream will not be finished).

        For those formats the server can only end the stream early (the status code has
        already been sent with the first bytes).
        """
        if self._codec is not None:
            self._codec.abort()
        if self.fmt != "msgpack":
            return b""
        return _pack({"type": "error", "message": str(message), "status": int(status)})


class Resampler:
    """Streaming resampling with libsoxr (python-soxr): chunk by chunk, no seams. Call it with
    each chunk of float mono samples, then with None for the samples it still holds."""

    def __init__(self, source_rate: int, target_rate: int):
        import soxr

        self._stream = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32")

    def __call__(self, samples: np.ndarray | None) -> np.ndarray:
        if samples is None:
            return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return self._stream.resample_chunk(np.asarray(samples, dtype=np.float32))


def resampler(source_rate: int, target_rate: int) -> Resampler | None:
    """A Resampler between two rates, or None where they are the same."""
    return Resampler(source_rate, target_rate) if source_rate != target_rate else None


def decode_msgpack_stream(data: bytes) -> list[dict]:
    """Decode a complete ``msgpack`` response body into its messages, in order.

    Raises ``ValueError`` if the body ends in the middle of a message.
    """
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    messages, consumed = [], 0
    for message in unpacker:
        messages.append(message)
        consumed = unpacker.tell()  # offset just past the last complete message
    if consumed != len(data):
        raise ValueError(f"msgpack stream is truncated: {len(data) - consumed} trailing bytes")
    return messages
