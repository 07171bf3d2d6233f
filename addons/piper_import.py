"""`voicestack addon import piper`: a Piper voice (VITS exported to ONNX, with its JSON) made
into an addon whose stack has the seed article's shape, streamed chunk by chunk.

Piper's ONNX graph runs a whole sentence at once: text encoder, stochastic duration predictor
(its own noise inside), durations rounded up (`Ceil`) and turned into a path (`CumSum`), the
prior's noise (`RandomNormalLike`), the reverse flow and the HiFi-GAN generator. The importer
cuts that graph, by surgery on the ONNX model, into two networks:

- `encoder` (role encoder): symbols and mask in; `encodings` (the prior's mean and log standard
  deviation per symbol) and `durations` (frames per symbol, before rounding and length scale)
  out. The duration predictor's noise becomes an input (`dp_noise`) that the host draws from
  the request's seed, scaled by the voice's `noise_w`.
- `decoder` (role decoder): frames drawn from the prior in, audio out (reverse flow and
  generator). Its receptive field is measured here, on the model, by perturbing one frame
  and finding how far the audio changes: with that much context on each side, a chunk's audio
  equals the same samples of one call on the whole sentence.

Between them the `Upsampler` repeats each encoding for its duration (rounded up, as VITS does)
and draws the prior (`prior`), per sentence, from the request's seed: Encoders -> Upsampler ->
Decoder. The cut points are found by the graph's structure (the `scales` input's three uses:
noise scale, length scale, duration noise), not by node names, so voices exported by other
versions of Piper's exporter import the same way; a graph without that structure is refused
naming what is missing. Nothing in the model runs while importing except through onnxruntime,
after the model passed the addon safety inspection (addons/onnx_file.py).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from voicestack.addons.format import ADDON_FILE, FORMAT_VERSION
from voicestack.blocks.errors import ConfigError, Problem, validation_problems

#: Bumped when what the importer writes changes (cached imports are rebuilt).
IMPORTER_VERSION = 4

#: The upsampler's chunk schedule for Piper voices, 16, 64, then 256 frames: a small first
#: chunk for an early first sound, then large ones, since each chunk pays the flow's and the
#: generator's context on both sides (bench/piper_cut.py compares schedules).
FIRST_CHUNK_FRAMES = 16
CHUNK_FRAMES = 256
GROWTH = 4.0
#: The most symbols the encoder sees at once (a longer sentence is encoded in pieces cut at
#: word starts).
MAX_SYMBOLS = 1024


class PiperImportError(ConfigError):
    """A Piper voice cannot be imported; each problem names the key or graph part."""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Audio(_Loose):
    sample_rate: int = Field(gt=0)
    quality: str | None = None


class _Espeak(_Loose):
    voice: str = Field(min_length=1)


class _Inference(_Loose):
    noise_scale: float = Field(default=0.667, ge=0)
    length_scale: float = Field(default=1.0, gt=0)
    noise_w: float = Field(default=0.8, ge=0)


class _Language(_Loose):
    code: str | None = None


class PiperVoiceConfig(_Loose):
    """The keys of a Piper voice's `.onnx.json` that an import needs (others are ignored)."""

    audio: _Audio
    espeak: _Espeak
    inference: _Inference = Field(default_factory=_Inference)
    phoneme_type: str = "espeak"
    phoneme_id_map: dict[str, list[int]] = Field(min_length=1)
    num_speakers: int = Field(default=1, ge=1)
    speaker_id_map: dict[str, int] = Field(default_factory=dict)
    language: _Language | None = None
    dataset: str | None = None
    vowel_clusters: list[list[str]] | None = None


def read_piper_config(path: Path) -> PiperVoiceConfig:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PiperImportError([Problem(str(path), f"cannot read the voice config: {e}")]) from e
    try:
        config = PiperVoiceConfig.model_validate(data)
    except ValidationError as e:
        raise PiperImportError(validation_problems(e)) from e
    problems = []
    if config.phoneme_type != "espeak":
        problems.append(
            Problem(
                "phoneme_type",
                f"{config.phoneme_type!r}: only espeak-ng phonemes are supported by the importer",
            )
        )
    outside = sorted(
        n for n, i in config.speaker_id_map.items() if not 0 <= i < config.num_speakers
    )
    if outside:
        problems.append(
            Problem("speaker_id_map", f"ids outside 0..{config.num_speakers - 1}: {outside[:10]}")
        )
    several = sorted(p for p, ids in config.phoneme_id_map.items() if len(ids) != 1)
    if several:
        problems.append(
            Problem("phoneme_id_map", f"phonemes without exactly one id: {several[:10]}")
        )
    for required in ("_", "^", "$", " "):
        if required not in config.phoneme_id_map:
            problems.append(Problem("phoneme_id_map", f"no id for {required!r}"))
    if problems:
        raise PiperImportError(problems)
    return config


def speaker_table(config: PiperVoiceConfig) -> dict[str, int]:
    """Every speaker of a multi-speaker voice by name (an id the voice's map does not name is
    named by its number); empty for a one-speaker voice."""
    if config.num_speakers == 1:
        return {}
    table = dict(config.speaker_id_map)
    named = set(table.values())
    for i in range(config.num_speakers):
        if i not in named and str(i) not in table:
            table[str(i)] = i
    return dict(sorted(table.items(), key=lambda item: item[1]))


def voice_name(model: Path, config: PiperVoiceConfig) -> str:
    """'en_US-joe-medium.onnx' -> 'joe' (the dataset), else the file's stem, as an addon name."""
    raw = config.dataset or Path(model).name.removesuffix(".onnx")
    name = re.sub(r"[^a-z0-9_-]+", "-", raw.lower()).strip("-_")
    return name[:64] or "piper-voice"


def import_piper(
    model: Path,
    config_path: Path | None,
    out: Path,
    name: str | None = None,
    split_generator: bool = True,
) -> Path:
    """Write the addon for Piper voice `model` (and its JSON, default `MODEL.json`) into
    `out`; return `out`. Raise PiperImportError (or UnsafeArchiveError) naming the problem.

    `split_generator`: the HiFi-GAN generator runs as a `Vocoder` after the `Decoder` (the
    reverse flow), so that only the flow pays the flow's wide context; otherwise the `Decoder`
    is flow and generator together (docs/architecture.md compares the two)."""
    import onnx
    from voicestack.addons.onnx_file import load_onnx_model

    model = Path(model)
    config_path = Path(config_path) if config_path else Path(f"{model}.json")
    config = read_piper_config(config_path)
    # The same inspection as any addon network: a voice file is untrusted input too.
    graph_model = onnx.load_model_from_string(load_onnx_model(model, model.parent))
    cut = _find_cut(graph_model)
    networks, channels = _split(graph_model, cut, split_generator)
    speakers = speaker_table(config)
    carry = 1 if cut["sid"] else 0
    if bool(speakers) != bool(carry):
        raise PiperImportError(
            [
                Problem(
                    "num_speakers",
                    f"the config says {config.num_speakers} speaker(s), but the model "
                    f"{'takes' if carry else 'takes no'} speaker id",
                )
            ]
        )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for network_name, network in networks.items():
        onnx.save_model(network, out / f"{network_name}.onnx")
    fields = {n: _receptive_field(networks[n], channels, carry) for n in networks if n != "encoder"}
    hop = fields["vocoder" if split_generator else "decoder"][0]
    addon = _addon_json(
        model, config, name or voice_name(model, config), channels, hop, fields, speakers
    )
    (out / ADDON_FILE).write_text(json.dumps(addon, indent=2, ensure_ascii=False) + "\n")
    return out


# --- finding the cut ------------------------------------------------------------------------


class _Graph:
    """Producers and consumers of the tensors of one ONNX graph."""

    def __init__(self, model: Any):
        from onnx import numpy_helper

        self.graph = model.graph
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list[Any]] = {}
        for n in self.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.constants = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for n in self.graph.node:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.constants[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)

    def consumer(self, tensor: str, op: str) -> Any:
        found = [n for n in self.consumers.get(tensor, []) if n.op_type == op]
        return found[0] if len(found) == 1 else None

    def made_by(self, tensor: str, op: str) -> Any:
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op else None


def _find_cut(model: Any) -> dict[str, str]:
    """The tensors to cut the graph at, found by structure; PiperImportError if absent."""
    g = _Graph(model)
    names = [i.name for i in g.graph.input]
    if names[:3] != ["input", "input_lengths", "scales"]:
        raise _not_piper(f"inputs {names}, not Piper's ['input', 'input_lengths', 'scales', ...]")
    scale = {}  # index into `scales` -> the tensor holding that scale
    for node in g.consumers.get("scales", []):
        index = g.constants.get(node.input[1]) if node.op_type == "Gather" else None
        if index is not None and index.size == 1:
            scale[int(index.reshape(()))] = node.output[0]
    if sorted(scale) != [0, 1, 2]:
        raise _not_piper(f"`scales` is read at {sorted(scale)}, not at 0, 1 and 2")

    def mul_with(tensor: str) -> Any:
        node = g.consumer(tensor, "Mul")
        if node is None:
            raise _not_piper(f"{tensor!r} is not multiplied once")
        other = node.input[0] if node.input[1] == tensor else node.input[1]
        return node, other

    # Duration noise: RandomNormalLike * noise_w.
    dp_mul, dp_random = mul_with(scale[2])
    if g.made_by(dp_random, "RandomNormalLike") is None:
        raise _not_piper("the duration noise scale does not scale a RandomNormalLike")
    # Durations: w * length_scale, then Ceil.
    w_mul, durations = mul_with(scale[1])
    if g.consumer(w_mul.output[0], "Ceil") is None:
        raise _not_piper("the length-scaled durations are not rounded up by a Ceil")
    # Prior: mean + RandomNormalLike * exp(log std) * noise_scale.
    prior_mul, noise_times_std = mul_with(scale[0])
    add = g.consumer(prior_mul.output[0], "Add")
    if add is None:
        raise _not_piper("the scaled prior noise is not added to a mean")
    mean_up = add.input[0] if add.input[1] == prior_mul.output[0] else add.input[1]
    std_mul = g.made_by(noise_times_std, "Mul")
    exp = next(
        (g.made_by(t, "Exp") for t in (std_mul.input if std_mul else []) if g.made_by(t, "Exp")),
        None,
    )
    if exp is None:
        raise _not_piper("the prior's noise is not scaled by exp(log std)")
    sid = names[3] if len(names) > 3 else None
    y_mask = _decoder_mask(g, add.output[0], sid)
    output = g.graph.output[0].name
    return {
        "sid": sid,
        "dp_noise": dp_mul.output[0],
        "durations": durations,
        "mean": _before_upsampling(g, mean_up),
        "log_std": _before_upsampling(g, exp.input[0]),
        "z_p": add.output[0],
        "y_mask": y_mask,
        "z": _generator_input(g, add.output[0], y_mask, output),
        "output": output,
    }


def _before_upsampling(g: _Graph, upsampled: str) -> str:
    """Piper upsamples with matmul(path, x.T).T: the per-symbol tensor x behind `upsampled`."""
    transpose = g.made_by(upsampled, "Transpose")
    matmul = g.made_by(transpose.input[0], "MatMul") if transpose else None
    inner = g.made_by(matmul.input[1], "Transpose") if matmul else None
    if inner is None:
        raise _not_piper(f"{upsampled!r} is not an upsampling matmul(path, x.T).T")
    return inner.input[0]


def _decoder_mask(g: _Graph, z_p: str, sid: str | None) -> str:
    """What the decoder needs besides z_p: the frame mask, and (a multi-speaker voice) what it
    computes from the speaker id alone, its speaker embedding."""
    stack = [z_p]
    nodes: dict[int, Any] = {}
    while stack:
        for node in g.consumers.get(stack.pop(), []):
            if id(node) not in nodes:
                nodes[id(node)] = node
                stack += list(node.output)
    produced = {o for n in nodes.values() for o in n.output}
    initializers = {t.name for t in g.graph.initializer}
    frontier = {
        t
        for n in nodes.values()
        for t in n.input
        if t
        and t not in produced
        and t not in initializers
        and t != z_p
        and not _sources(g, t) <= {sid}  # weights, or the speaker's embedding
    }
    if len(frontier) != 1:
        raise _not_piper(f"the flow and generator read {sorted(frontier)} besides the prior")
    return frontier.pop()


def _sources(g: _Graph, tensor: str) -> set[str]:
    """The graph inputs `tensor` is computed from."""
    inputs = {i.name for i in g.graph.input}
    found, seen, stack = set(), set(), [tensor]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in inputs:
            found.add(t)
        elif t in g.producer:
            stack += [i for i in g.producer[t].input if i]
    return found


def _not_piper(why: str) -> PiperImportError:
    return PiperImportError([Problem("model", f"not the graph of a Piper VITS export ({why})")])


# --- the two networks ------------------------------------------------------------------------


def _split(model: Any, cut: dict[str, str], split_generator: bool) -> tuple[dict[str, Any], int]:
    """The networks by name ('encoder', 'decoder' and, split off, 'vocoder'), wrapped to
    voicestack's network conventions (batch first, a float `mask`, (batch, length, channels)
    frames).

    A multi-speaker voice conditions every part on its speaker embedding. The encoder takes
    the speaker id (`speaker`) and writes it into one more channel of its encodings; the
    upsampler carries that channel through (`prior.carry`); the decoder and the vocoder read the
    id back from their first frame and look their embedding up themselves. So the speaker
    travels with the frames, and chunks of different speakers batch together."""
    import onnx
    from onnx import TensorProto, helper
    from onnx.utils import Extractor

    sid = cut["sid"]
    speaker = [sid] if sid else []
    extractor = Extractor(onnx.shape_inference.infer_shapes(model))
    # The extractor types a cut part's inputs and outputs from the model's value infos; a cut
    # tensor shape inference cannot type (in some exports) is a float of unknown shape.
    for name in (
        cut[k] for k in ("dp_noise", "mean", "log_std", "durations", "z_p", "y_mask", "z")
    ):
        if name not in extractor.value_infos:
            extractor.value_infos[name] = helper.make_tensor_value_info(
                name, TensorProto.FLOAT, None
            )
    enc_in = ["input", "input_lengths", cut["dp_noise"], *speaker]
    enc = extractor.extract_model(enc_in, [cut["mean"], cut["log_std"], cut["durations"]])
    dec_out = cut["z"] if split_generator else cut["output"]
    dec = extractor.extract_model([cut["z_p"], cut["y_mask"], *speaker], [dec_out])
    parts = [(enc, set(enc_in)), (dec, {cut["z_p"], cut["y_mask"], *speaker})]
    if split_generator:
        gen = extractor.extract_model([cut["z"], *speaker], [cut["output"]])
        parts.append((gen, {cut["z"], *speaker}))
    for part, want in parts:
        got = {i.name for i in part.graph.input}
        if got != want:
            raise _not_piper(f"a cut part reads {sorted(got)}, expected {sorted(want)}")
    channels = _channels(enc, cut["mean"])
    carry = 1 if sid else 0

    def value(name: str, dims: list, elem: int = TensorProto.FLOAT) -> Any:
        return helper.make_tensor_value_info(name, elem, dims)

    def ints(name: str, values: list[int]) -> Any:
        return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)

    constants = [
        ints("vs_axis1", [1]),
        ints("vs_axes12", [1, 2]),
        ints("vs_zero", [0]),
        ints("vs_one", [1]),
        ints("vs_channels", [channels]),
        ints("vs_wider", [channels + 1]),
        ints("vs_axis2", [2]),
        ints("vs_batch", [-1]),
    ]

    def read_speaker(frames_bct: str) -> list[Any]:
        """Nodes: the latent frames (channels first) in `frames_bct` -> z (`vs_z`) and the speaker
        id of each item from the carried channel of its first frame (`sid`)."""
        if not sid:
            return [helper.make_node("Identity", [frames_bct], ["vs_z"])]
        return [
            helper.make_node("Slice", [frames_bct, "vs_zero", "vs_channels", "vs_axis1"], ["vs_z"]),
            helper.make_node(
                "Slice", [frames_bct, "vs_channels", "vs_wider", "vs_axis1"], ["vs_speaker_row"]
            ),
            helper.make_node(
                "Slice", ["vs_speaker_row", "vs_zero", "vs_one", "vs_axis2"], ["vs_first"]
            ),
            helper.make_node("Reshape", ["vs_first", "vs_batch"], ["vs_speaker_f"]),
            helper.make_node("Round", ["vs_speaker_f"], ["vs_speaker_r"]),
            helper.make_node("Cast", ["vs_speaker_r"], [sid], to=TensorProto.INT64),
        ]

    def with_speaker(latent_bct: str, out: str) -> list[Any]:
        """Nodes: `latent_bct` with the input's speaker channel appended again, as `out`."""
        if not sid:
            return [helper.make_node("Identity", [latent_bct], [out])]
        return [helper.make_node("Concat", [latent_bct, "vs_speaker_row"], [out], axis=1)]

    length = ["batch", "length"]
    frames = [*length, channels + carry]
    enc_inputs = [
        value("symbols", length, TensorProto.INT64),
        value("mask", length),
        value("dp_noise", ["batch", 2, "length"]),
    ]
    enc_before = [
        helper.make_node("Identity", ["symbols"], ["input"]),
        helper.make_node("ReduceSum", ["mask", "vs_axis1"], ["vs_lengths"], keepdims=0),
        helper.make_node("Cast", ["vs_lengths"], ["input_lengths"], to=TensorProto.INT64),
        helper.make_node("Identity", ["dp_noise"], [cut["dp_noise"]]),
    ]
    prior = [cut["mean"], cut["log_std"]]
    if sid:
        enc_inputs.append(value("speaker", ["batch"], TensorProto.INT64))
        enc_before.append(helper.make_node("Identity", ["speaker"], [sid]))
        # The id as one channel as long as the encodings: (batch, 1, symbols).
        enc_before_out = [
            helper.make_node("Cast", ["speaker"], ["vs_speaker_f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["vs_speaker_f", "vs_axes12"], ["vs_speaker_b11"]),
            helper.make_node(
                "Slice", [cut["mean"], "vs_zero", "vs_one", "vs_axis1"], ["vs_one_channel"]
            ),
            helper.make_node("Shape", ["vs_one_channel"], ["vs_row_shape"]),
            helper.make_node("Expand", ["vs_speaker_b11", "vs_row_shape"], ["vs_speaker_row"]),
        ]
        prior.append("vs_speaker_row")
    else:
        enc_before_out = []
    networks = {
        "encoder": _wrap(
            enc,
            inputs=enc_inputs,
            before=enc_before,
            after=[
                *enc_before_out,
                helper.make_node("Concat", prior, ["vs_prior"], axis=1),
                helper.make_node("Transpose", ["vs_prior"], ["encodings"], perm=[0, 2, 1]),
                helper.make_node("Squeeze", [cut["durations"], "vs_axis1"], ["durations"]),
            ],
            outputs=[
                value("encodings", [*length, 2 * channels + carry]),
                value("durations", length),
            ],
            constants=constants,
        )
    }
    audio = [helper.make_node("Flatten", [cut["output"]], ["audio"], axis=1)]
    networks["decoder"] = _wrap(
        dec,
        inputs=[value("frames", frames), value("mask", length)],
        before=[
            helper.make_node("Transpose", ["frames"], ["vs_frames"], perm=[0, 2, 1]),
            *read_speaker("vs_frames"),
            helper.make_node("Identity", ["vs_z"], [cut["z_p"]]),
            helper.make_node("Unsqueeze", ["mask", "vs_axis1"], [cut["y_mask"]]),
        ],
        after=[
            *with_speaker(cut["z"], "vs_latent"),
            helper.make_node("Transpose", ["vs_latent"], ["latent"], perm=[0, 2, 1]),
        ]
        if split_generator
        else audio,
        outputs=[value("latent", frames)]
        if split_generator
        else [value("audio", ["batch", "samples"])],
        constants=constants,
    )
    if split_generator:
        networks["vocoder"] = _wrap(
            gen,
            inputs=[value("latent", frames)],
            before=[
                helper.make_node("Transpose", ["latent"], ["vs_frames"], perm=[0, 2, 1]),
                *read_speaker("vs_frames"),
                helper.make_node("Identity", ["vs_z"], [cut["z"]]),
            ],
            after=audio,
            outputs=[value("audio", ["batch", "samples"])],
            constants=constants,
        )
    return networks, channels


def _generator_input(g: _Graph, z_p: str, y_mask: str, output: str) -> str:
    """The generator's input: the flow's output, masked one last time. The generator (HiFi-GAN)
    reads no mask; the flow multiplies by it in every layer, so it is the one multiplication by
    the mask after which nothing reads the mask again."""

    def cone(start: str) -> list[Any]:
        seen: dict[int, Any] = {}
        stack = [start]
        while stack:
            for node in g.consumers.get(stack.pop(), []):
                if id(node) not in seen:
                    seen[id(node)] = node
                    stack += list(node.output)
        return list(seen.values())

    region = {id(n) for n in cone(z_p)}
    for node in g.consumers.get(y_mask, []):
        if node.op_type != "Mul" or id(node) not in region:
            continue
        after = cone(node.output[0])
        if output in {o for n in after for o in n.output} and not any(
            y_mask in n.input for n in after
        ):
            return node.output[0]
    raise _not_piper("no masked flow output feeds the generator")


def _wrap(
    part: Any, inputs: list, before: list, after: list, outputs: list, constants: list
) -> Any:
    import onnx
    from onnx import helper

    nodes = [*before, *part.graph.node, *after]
    read = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        nodes,
        part.graph.name,
        inputs,
        outputs,
        initializer=[*part.graph.initializer, *(c for c in constants if c.name in read)],
    )
    model = helper.make_model(
        graph, opset_imports=list(part.opset_import), producer_name="voicestack piper import"
    )
    model.ir_version = part.ir_version
    onnx.checker.check_model(model)
    return model


def _channels(enc: Any, mean: str) -> int:
    """The prior's channels, from one call of the encoder on four symbols."""
    import numpy as np
    import onnxruntime as ort

    probe = enc.SerializeToString()
    session = ort.InferenceSession(probe, providers=["CPUExecutionProvider"])
    names = [i.name for i in enc.graph.input]
    feed = {
        "input": np.ones((1, 4), dtype=np.int64),
        "input_lengths": np.array([4], dtype=np.int64),
        names[2]: np.zeros((1, 2, 4), dtype=np.float32),
    }
    if len(names) > 3:  # the speaker id
        feed[names[3]] = np.zeros(1, dtype=np.int64)
    out = session.run([mean], feed)[0]
    return int(out.shape[1])


def _receptive_field(network: Any, channels: int, carry: int) -> tuple[int, int]:
    """(output samples per input frame, receptive field in frames), measured on the network
    itself: one frame in the middle of a long input is changed, and the output that changes
    with it spans the frames within the receptive field, and no others. The `carry` channels
    after the latent ones (the speaker id) hold speaker 0 and are not perturbed."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(network.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in network.graph.input]
    frames = 301
    z = np.random.default_rng(0).standard_normal((1, frames, channels + carry)).astype(np.float32)
    z[..., channels:] = 0.0

    def run(x: np.ndarray) -> np.ndarray:
        feed = {inputs[0]: x}
        if "mask" in inputs:
            feed["mask"] = np.ones((1, frames), dtype=np.float32)
        return session.run(None, feed)[0][0].reshape(frames, -1)  # one row per input frame

    base = run(z)
    centre = frames // 2
    z[0, centre, :channels] += 3.0
    changed = np.flatnonzero((run(z) != base).any(axis=1))
    if changed.size == 0:
        raise _not_piper("a network's output does not depend on its input")
    field = int(max(centre - changed.min(), changed.max() - centre))
    if field >= centre:
        raise _not_piper(f"a network's receptive field is not bounded within {centre} frames")
    return base.shape[1] if "audio" in {o.name for o in network.graph.output} else 1, field


# --- addon.json -----------------------------------------------------------------------------


def _symbols(config: PiperVoiceConfig) -> list[str]:
    """The symbol table: index = Piper's phoneme id; ids no phoneme has get a placeholder that
    no phonemizer output can equal."""
    by_id = {ids[0]: phoneme for phoneme, ids in config.phoneme_id_map.items()}
    return [by_id.get(i, f"<unused {i}>") for i in range(max(by_id) + 1)]


def _language(config: PiperVoiceConfig) -> str:
    code = config.language.code if config.language and config.language.code else None
    return (code or config.espeak.voice).replace("_", "-")


def _addon_json(
    model: Path,
    config: PiperVoiceConfig,
    name: str,
    channels: int,
    hop: int,
    fields: dict[str, tuple[int, int]],
    speakers: dict[str, int],
) -> dict[str, Any]:
    inference = config.inference
    carry = 1 if speakers else 0  # the speaker id's channel, after the latent ones
    wide = channels + carry
    split = "vocoder" in fields
    frontend: dict[str, Any] = {"type": "PiperFrontend", "espeak_voice": config.espeak.voice}
    if config.vowel_clusters:
        frontend["vowel_clusters"] = config.vowel_clusters
    length = ["batch", "length"]
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": f"piper-import-{IMPORTER_VERSION}",
        "language": _language(config),
        "architecture": "vits",
        "description": unicodedata.normalize(
            "NFC",
            f"Piper voice {Path(model).name} ({config.audio.quality or 'unknown'} quality), "
            f"imported by `voicestack addon import piper`: VITS cut into encoder "
            f"(text encoder, duration predictor) and decoder (flow, HiFi-GAN).",
        ),
        # The 'mel' frames of a VITS voice are its latent frames (and the speaker's channel).
        "audio": {
            "sample_rate": config.audio.sample_rate,
            "hop_length": hop,
            "n_mels": wide,
            "n_fft": max(1024, hop),
            "win_length": max(1024, hop),
        },
        "symbols": _symbols(config),
        **({"speakers": speakers} if speakers else {}),
        "frontend": frontend,
        "networks": {
            "encoder": {
                "file": "encoder.onnx",
                "role": "encoder",
                "inputs": [
                    {"name": "symbols", "dtype": "int64", "shape": length},
                    {"name": "mask", "shape": length},
                    {
                        "name": "dp_noise",
                        "shape": ["batch", 2, "length"],
                        "noise": inference.noise_w,
                    },
                    *([{"name": "speaker", "dtype": "int64", "shape": ["batch"]}] if carry else []),
                ],
                "outputs": [
                    {"name": "encodings", "shape": [*length, 2 * channels + carry]},
                    {"name": "durations", "shape": length},
                ],
                # Attention over a longer sentence costs quadratic memory: cut at words.
                "max_length": MAX_SYMBOLS,
            },
            "decoder": {
                "file": "decoder.onnx",
                "role": "decoder",
                "inputs": [
                    {"name": "frames", "shape": [*length, wide]},
                    {"name": "mask", "shape": length},
                ],
                "outputs": [
                    {"name": "latent", "shape": [*length, wide]}
                    if split
                    else {"name": "audio", "shape": ["batch", f"length*{hop}"]}
                ],
                "receptive_field_frames": fields["decoder"][1],
            },
            **(
                {
                    "vocoder": {
                        "file": "vocoder.onnx",
                        "role": "vocoder",
                        "inputs": [{"name": "latent", "shape": [*length, wide]}],
                        "outputs": [{"name": "audio", "shape": ["batch", f"length*{hop}"]}],
                        "receptive_field_frames": fields["vocoder"][1],
                    }
                }
                if split
                else {}
            ),
        },
        "stack": [
            {
                "type": "StreamablePipeline",
                "sequence_block": {"type": "Encoders"},
                "streamable_block": {
                    "type": "StreamableStack",
                    "stack": [
                        {
                            "type": "Upsampler",
                            "first_chunk_frames": FIRST_CHUNK_FRAMES,
                            "growth": GROWTH,
                            "chunk_frames": CHUNK_FRAMES,
                            "rounding": "ceil",
                            "speed": 1.0 / inference.length_scale,
                            "prior": {"noise_scale": inference.noise_scale, "carry": carry}
                            if carry
                            else {"noise_scale": inference.noise_scale},
                        },
                        {"type": "Decoder"},
                    ],
                },
            },
            *([{"type": "Vocoder"}] if split else []),
        ],
    }
