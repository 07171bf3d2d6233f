"""The addon format: what `addon.json` holds, as typed objects validated once at load.

An addon is a folder: `addon.json` plus one file per network, a torch.export archive (`.pt2`)
or an ONNX model (`.onnx`, run by onnxruntime). Every field is
checked here, with errors that name the key; cross-field checks (files named by networks,
symbols consistent) name the values that disagree.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from voicestack.placement.config import Placement

#: Version of this format. Bumped on any change an older loader could misread.
FORMAT_VERSION = 1

ADDON_FILE = "addon.json"

_DIM = re.compile(r"(batch|length)(\*[1-9][0-9]*)?\Z")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AudioConfig(_Strict):
    """How the voice's audio and mel frames relate. Units are in the names."""

    sample_rate: int = Field(gt=0)
    hop_length: int = Field(gt=0, description="samples per mel frame")
    n_mels: int = Field(gt=0)
    n_fft: int = Field(default=1024, gt=0)
    win_length: int = Field(default=1024, gt=0)
    f_min_hz: float = Field(default=0.0, ge=0)
    f_max_hz: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> AudioConfig:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} exceeds n_fft {self.n_fft}")
        if self.hop_length > self.win_length:
            raise ValueError(f"hop_length {self.hop_length} exceeds win_length {self.win_length}")
        nyquist = self.sample_rate / 2
        if self.f_max_hz is not None and self.f_max_hz > nyquist:
            raise ValueError(f"f_max_hz {self.f_max_hz} exceeds the Nyquist frequency {nyquist}")
        return self


Dim = int | str


class TensorSpec(_Strict):
    """One input or output of a network. `shape` names its dims: an int is fixed, `batch` is the
    batch axis, `length` the axis that grows with the input (symbols or frames) and `length*K`
    an axis K times as long (a vocoder's samples)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dtype: Literal["float32", "int64"] = "float32"
    shape: list[Dim] = Field(min_length=1)
    noise: float | None = Field(
        default=None,
        ge=0,
        description="inputs only: not a feature but noise the host draws for each sentence, "
        "standard normal times this scale, from the request's seed (a VITS duration "
        "predictor's noise), so that the same seed gives the same audio",
    )

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape: list[Dim]) -> list[Dim]:
        for dim in shape:
            if isinstance(dim, int) and dim < 1 or isinstance(dim, str) and not _DIM.match(dim):
                raise ValueError(
                    f"dim {dim!r} must be a positive int, 'batch', 'length' or 'length*K'"
                )
        return shape

    @property
    def length_axis(self) -> int | None:
        for i, dim in enumerate(self.shape):
            if isinstance(dim, str) and dim.startswith("length"):
                return i
        return None

    @property
    def length_scale(self) -> int:
        axis = self.length_axis
        if axis is None:
            return 1
        _, _, k = str(self.shape[axis]).partition("*")
        return int(k) if k else 1


class NetworkSpec(_Strict):
    """A network of the addon: its archive, what it is for, and its inputs and outputs."""

    file: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+\.(pt2|onnx)$",
        description="in the addon folder: a torch.export archive (.pt2) or an ONNX model (.onnx)",
    )
    role: Literal["encoder", "decoder", "vocoder", "attention_decoder"]
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    receptive_field_frames: int | None = Field(
        default=None,
        ge=0,
        description="frames on each side that one output frame depends on; None if unbounded",
    )
    max_length: int | None = Field(
        default=None,
        ge=1,
        description="the longest input (along `length`) one call takes; a longer one is cut "
        "at word starts (a torch archive's exported bound applies as well)",
    )

    @property
    def backend(self) -> Literal["torch", "onnx"]:
        return "onnx" if self.file.endswith(".onnx") else "torch"

    @model_validator(mode="after")
    def _unique_names(self) -> NetworkSpec:
        for side in ("inputs", "outputs"):
            names = [t.name for t in getattr(self, side)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{side} names repeat: {dupes}")
        noisy_outputs = [t.name for t in self.outputs if t.noise is not None]
        if noisy_outputs:
            raise ValueError(f"outputs cannot be noise: {noisy_outputs}")
        return self


Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]


class AddonConfig(_Strict):
    """The whole of `addon.json`."""

    format_version: int
    name: Name
    version: str = Field(min_length=1)
    language: str = Field(min_length=2, description="BCP 47 tag, e.g. en-US")
    architecture: Literal["duration", "attention"] | str = Field(
        description="acoustic model family: 'duration' (FastSpeech-like), 'attention' (Tacotron-like)"
    )
    description: str = ""
    audio: AudioConfig
    symbols: list[str] = Field(min_length=2, description="symbol table; index = id; 0 is padding")
    frontend: dict[str, Any] = Field(default_factory=lambda: {"type": "Frontend"})
    speakers: dict[str, int] = Field(
        default_factory=dict,
        description="a multi-speaker voice's speakers: name -> the id its networks take "
        "(a request's `speaker`); empty for a one-speaker voice",
    )
    networks: dict[str, NetworkSpec] = Field(min_length=1)
    stack: list[dict[str, Any]] = Field(min_length=1)
    placement: Placement = Field(default_factory=Placement)

    @field_validator("format_version")
    @classmethod
    def _supported(cls, version: int) -> int:
        if version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {version} is not supported (this loader reads {FORMAT_VERSION})"
            )
        return version

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, symbols: list[str]) -> list[str]:
        dupes = sorted({s for s in symbols if symbols.count(s) > 1})
        if dupes:
            raise ValueError(f"symbols repeat: {dupes}")
        if any(not s for s in symbols):
            raise ValueError("symbols must be non-empty strings")
        return symbols

    @field_validator("speakers")
    @classmethod
    def _speakers(cls, speakers: dict[str, int]) -> dict[str, int]:
        ids = list(speakers.values())
        if any(i < 0 for i in ids):
            raise ValueError("speaker ids must be non-negative")
        dupes = sorted({n for n, i in speakers.items() if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"speakers share ids: {dupes}")
        if any(not n.strip() for n in speakers):
            raise ValueError("speaker names must be non-empty")
        return speakers

    @model_validator(mode="after")
    def _networks_consistent(self) -> AddonConfig:
        files = [n.file for n in self.networks.values()]
        dupes = sorted({f for f in files if files.count(f) > 1})
        if dupes:
            raise ValueError(f"networks share archive files: {dupes}")
        return self
