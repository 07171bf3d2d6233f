"""The registry builds a voice's block tree from its `stack`, by type name, and nothing else."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from voicestack.blocks import BUILTIN_BLOCKS, REGISTRY
from voicestack.blocks.core.registry import BlockRegistry
from voicestack.blocks.core.sequence import SequenceBlock
from voicestack.blocks.core.streamable import StreamableBlock
from voicestack.blocks.errors import StackError
from voicestack.runtime.local import synthesize
from voicestack.runtime.voice import build_voice

from .conftest import SEED_STACK, voice_with, with_config

VOCODER = {"type": "Vocoder"}


@pytest.mark.parametrize("name", sorted(BUILTIN_BLOCKS))
def test_every_builtin_block_resolves_to_a_class_extending_an_abstraction(name):
    cls = REGISTRY.resolve(name)
    assert issubclass(cls, (SequenceBlock, StreamableBlock))
    assert name in REGISTRY.known()


def test_importing_the_registry_does_not_import_torch():
    import subprocess

    code = "import sys, voicestack.blocks as b; b.REGISTRY.known(); print('torch' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


def test_a_registry_made_in_core_knows_the_composites_alone():
    """core names no concrete block: the package's registry (blocks/__init__.py) adds them."""
    composites = {"StreamablePipeline", "SequenceBlockContainer", "StreamableStack"}
    known = set(BlockRegistry().known())
    assert composites <= known
    assert not known & (set(BUILTIN_BLOCKS) - composites)
    assert set(BUILTIN_BLOCKS) <= set(REGISTRY.known())


def test_the_seed_articles_stack_loads_as_written_followed_by_the_vocoder(duration_addon):
    voice = voice_with(duration_addon, stack=SEED_STACK + [VOCODER])
    pipeline = voice.stack.stack[0]
    assert pipeline.type_name == "StreamablePipeline"
    assert [b.config.network for b in pipeline.sequence_block.blocks] == [
        "text_encoder",
        "duration_predictor",
    ]
    assert [b.type_name for b in pipeline.streamable_block.stack] == ["Upsampler", "Decoder"]
    assert synthesize(voice, "Hello there.").size > 0


def test_swapping_encoders_for_customized_encoders_is_one_word_and_gives_the_same_audio(
    duration_addon,
):
    plain = synthesize(
        voice_with(duration_addon, stack=SEED_STACK + [VOCODER]), "Hello there, friend."
    )
    stack = [{**SEED_STACK[0], "sequence_block": {"type": "CustomizedEncoders"}}, VOCODER]
    custom_voice = voice_with(duration_addon, stack=stack)
    assert type(custom_voice.stack.stack[0].sequence_block).__name__ == "CustomizedEncoders"
    np.testing.assert_allclose(synthesize(custom_voice, "Hello there, friend."), plain, atol=1e-6)


def problems_of(addon, stack) -> list[str]:
    with pytest.raises(StackError) as e:
        voice_with(addon, stack=stack)
    return [str(p) for p in e.value.problems]


def test_an_unknown_type_is_refused_with_its_path_and_the_known_names(duration_addon):
    stack = [
        {
            **SEED_STACK[0],
            "streamable_block": {
                "type": "StreamableStack",
                "stack": [{"type": "Upsampler"}, {"type": "Decodr"}],
            },
        },
        VOCODER,
    ]
    (problem,) = problems_of(duration_addon, stack)
    assert problem.startswith(
        "stack[0].streamable_block.stack[1]: unknown block type 'Decodr' (known: "
    )
    assert "Decoder" in problem and "Upsampler" in problem


@pytest.mark.parametrize(
    "type_name", ["os:system", "os.system", "vs_sentinel:Boom", "vs_sentinel", "__import__"]
)
def test_a_stack_never_imports_or_calls_what_it_names(
    duration_addon, tmp_path, monkeypatch, type_name
):
    marker = tmp_path / "imported"
    (tmp_path / "vs_sentinel.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Boom:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    called = []
    monkeypatch.setattr("os.system", lambda *a: called.append(a))
    (problem,) = problems_of(duration_addon, [{"type": type_name}])
    assert f"unknown block type {type_name!r}" in problem
    assert not marker.exists() and "vs_sentinel" not in sys.modules and not called


def test_a_missing_required_key_names_the_node_and_the_key(duration_addon):
    (problem,) = problems_of(
        duration_addon,
        [{"type": "StreamablePipeline", "sequence_block": {"type": "Encoders"}}, VOCODER],
    )
    assert problem == "stack[0].streamable_block: StreamablePipeline needs key 'streamable_block'"


def test_a_pipeline_with_two_sequence_blocks_is_refused(duration_addon):
    stack = [
        {**SEED_STACK[0], "sequence_block": [{"type": "Encoders"}, {"type": "Encoders"}]},
        VOCODER,
    ]
    (problem,) = problems_of(duration_addon, stack)
    assert (
        problem
        == "stack[0].sequence_block: StreamablePipeline takes exactly one block here, got a list of 2"
    )


def test_a_streamable_block_where_a_sequence_block_belongs_is_refused(duration_addon):
    stack = [{**SEED_STACK[0], "sequence_block": {"type": "Upsampler"}}, VOCODER]
    (problem,) = problems_of(duration_addon, stack)
    assert problem.startswith("stack[0].sequence_block: expected a SequenceBlock, got Upsampler")


def test_a_block_whose_inputs_no_earlier_block_produces_is_refused(duration_addon):
    # No encoders: nothing makes the encodings and durations the upsampler needs.
    stack = [
        {"type": "StreamableStack", "stack": [{"type": "Upsampler"}, {"type": "Decoder"}]},
        VOCODER,
    ]
    (problem,) = problems_of(duration_addon, stack)
    assert problem.startswith(
        "stack[0].stack[0]: Upsampler needs feature(s) 'encodings', 'durations', which no earlier block produces"
    )


def test_a_block_fed_the_wrong_kind_of_stream_is_refused(duration_addon):
    stack = SEED_STACK + [{"type": "Gain"}, VOCODER]
    (problem,) = problems_of(duration_addon, stack)
    assert (
        problem == "stack[1]: Gain consumes a 'audio' stream, but the block before it yields 'mel'"
    )


def test_a_stack_that_does_not_end_in_audio_is_refused(duration_addon):
    assert problems_of(duration_addon, SEED_STACK) == [
        "stack: the stack must end in audio; it yields 'mel'"
    ]


def test_an_unknown_key_and_a_bad_value_are_named(duration_addon):
    stack = [
        {
            **SEED_STACK[0],
            "streamable_block": {
                "type": "StreamableStack",
                "stack": [{"type": "Upsampler", "chunk_frame": 8}, {"type": "Decoder"}],
            },
        },
        {"type": "Vocoder", "context_frames": -1},
    ]
    problems = problems_of(duration_addon, stack)
    assert "stack[0].streamable_block.stack[0].chunk_frame: unknown key" in problems
    assert any(
        p.startswith("stack[1].context_frames: Input should be greater than or equal to 0")
        for p in problems
    )


def test_a_context_smaller_than_the_receptive_field_is_refused(duration_addon):
    (problem,) = problems_of(
        duration_addon, SEED_STACK + [{"type": "Vocoder", "context_frames": 1}]
    )
    assert (
        problem
        == "stack[1].context_frames: 1 frames do not cover the receptive field of network 'vocoder' (3 frames)"
    )


def test_every_problem_is_reported_not_just_the_first(duration_addon):
    stack = [{"type": "Nope"}, {"type": "Vocoder", "colour": "red"}, {"type": "Alsonope"}]
    assert len(problems_of(duration_addon, stack)) == 3


class Echo(StreamableBlock):
    """A user's own block: passes any stream through."""

    consumes = "any"

    def stream(self, features, upstream):
        yield from upstream


def test_a_block_registered_in_code_is_named_like_a_builtin(duration_addon):
    registry = BlockRegistry(BUILTIN_BLOCKS)
    registry.register("Echo", Echo)
    voice = build_voice(
        with_config(duration_addon, stack=SEED_STACK + [{"type": "Echo"}, VOCODER]),
        registry=registry,
    )
    assert [b.type_name for b in voice.stack.stack] == ["StreamablePipeline", "Echo", "Vocoder"]


def test_registering_a_class_that_extends_neither_abstraction_fails_at_registration():
    with pytest.raises(
        TypeError, match="must be a class extending SequenceBlock or StreamableBlock"
    ):
        BlockRegistry().register("NotABlock", dict)


def test_a_builtin_name_cannot_be_taken_over():
    with pytest.raises(ValueError, match="built in"):
        BlockRegistry(BUILTIN_BLOCKS).register("Vocoder", Echo)


def write_plugin(root, entry: str) -> None:
    (root / "vs_plugin_demo").mkdir()
    (root / "vs_plugin_demo" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from voicestack.blocks.core.chunk import Chunk
            from voicestack.blocks.core.streamable import ChunkwiseBlock

            class Invert(ChunkwiseBlock):
                consumes = "audio"
                produces = "audio"

                def process(self, chunk):
                    return Chunk(-chunk.core, chunk.start, is_last=chunk.is_last)

            class NotABlock:
                pass
            """
        )
    )
    info = root / "vs_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vs-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[voicestack.blocks]\n{entry}\n")


def test_an_installed_packages_entry_point_block_is_named_like_a_builtin(
    duration_addon, tmp_path, monkeypatch
):
    write_plugin(tmp_path, "Invert = vs_plugin_demo:Invert")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = BlockRegistry(BUILTIN_BLOCKS)
    assert "Invert" in registry.known()
    plain = synthesize(voice_with(duration_addon, stack=SEED_STACK + [VOCODER]), "Hello.")
    voice = build_voice(
        with_config(duration_addon, stack=SEED_STACK + [VOCODER, {"type": "Invert"}]),
        registry=registry,
    )
    np.testing.assert_allclose(synthesize(voice, "Hello."), -plain, atol=1e-6)


def test_an_entry_point_that_is_not_a_block_is_refused_when_named(
    duration_addon, tmp_path, monkeypatch
):
    write_plugin(tmp_path, "Invert = vs_plugin_demo:NotABlock")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match="Invert.*must be a class extending"):
        BlockRegistry().resolve("Invert")
