"""The plan: one typed form of a voice, made once by compile_plan, read back from its data
whole, and the one source of every deployment's name and options."""

from __future__ import annotations

import pytest
import torch
from voicestack.runtime.plan import Plan, run_sequence, stream_local, stream_segments
from voicestack.serve_app.composer import Composer
from voicestack.serve_app.deployments import composer_options, leaf_deployments

from .conftest import voice_with

DURATION_STACK_WITH_GAINS = [
    {
        "type": "StreamablePipeline",
        "sequence_block": {
            "type": "SequenceBlockContainer",
            "blocks": [
                {"type": "Encoder", "network": "text_encoder"},
                {"type": "Encoder", "network": "duration_predictor"},
            ],
        },
        "streamable_block": {
            "type": "StreamableStack",
            "stack": [{"type": "Upsampler"}, {"type": "Decoder"}],
        },
    },
    {"type": "Diagnostics"},
    {"type": "Vocoder"},
    {"type": "Gain", "gain_db": -3},
    {"type": "Gain", "gain_db": 2},
]


def round_trip(plan: Plan) -> Plan:
    return Plan.from_dict(plan.to_dict())


@pytest.mark.parametrize("name", ["duration", "attention"])
def test_a_test_voices_plan_reads_back_equal_from_its_data(name, duration_addon, attention_addon):
    plan = voice_with(duration_addon if name == "duration" else attention_addon).plan
    again = round_trip(plan)
    assert again == plan
    assert again.to_dict() == plan.to_dict()
    assert all(leaf.block is None for leaf in again.leaves())  # blocks stay in their process
    assert all(leaf.block is not None for leaf in plan.leaves())


def test_joes_plan_reads_back_equal_from_its_data():
    from voicestack.addons.loader import load_addon
    from voicestack.addons.search_path import find_voice
    from voicestack.runtime.voice import build_voice

    try:
        entry = find_voice("joe")
    except LookupError:
        pytest.skip("joe's package is not installed")
    plan = build_voice(load_addon(entry.path)).plan
    assert round_trip(plan) == plan
    assert [leaf.name for leaf in plan.leaves()] == ["Encoders", "Upsampler", "Decoder", "Vocoder"]
    assert plan.reads >= {"speed"}


def test_the_plan_says_what_the_voice_is(duration_addon, attention_addon):
    duration = voice_with(duration_addon).plan
    assert (duration.name, duration.architecture, duration.sample_rate) == (
        "test-duration",
        "duration",
        22050,
    )
    assert (duration.times_symbols, duration.reports_alignment) == (True, False)
    assert "speed" in duration.reads
    [encoders] = duration.sequence
    assert (encoders.type, encoders.placement_type, encoders.produces) == (
        "Encoders",
        "Encoder",  # Encoders runs Encoder networks: an `Encoder` entry places them
        None,
    )
    [segment] = duration.segments
    assert (segment.head.type, segment.head.produces) == ("Upsampler", "upsampled")
    assert [(s.leaf.type, s.leaf.produces) for s in segment.steps] == [
        ("Decoder", "mel"),
        ("Vocoder", "audio"),
    ]
    attention = voice_with(attention_addon).plan
    assert (attention.times_symbols, attention.reports_alignment) == (False, True)
    assert attention.segments[0].head.type == "AttentionDecoder"


def test_a_container_of_config_nodes_runs_as_its_leaves_and_repeated_types_are_numbered(
    duration_addon,
):
    voice = voice_with(duration_addon, stack=DURATION_STACK_WITH_GAINS)
    plan = voice.plan
    assert [leaf.name for leaf in plan.sequence] == ["Encoder", "Encoder-2"]
    first, second = plan.segments
    assert [s.leaf.name for s in first.steps] == ["Decoder"]
    assert second.head.name == "Diagnostics"
    assert [s.leaf.name for s in second.steps] == ["Vocoder", "Gain", "Gain-2"]
    assert round_trip(plan) == plan
    with pytest.raises(KeyError, match="no leaf at 'nowhere'"):
        plan.leaf("nowhere")
    assert plan.leaf(second.steps[2].leaf.path) == second.steps[2].leaf


def test_a_plan_read_from_data_builds_its_leaves_and_streams_the_same(duration_addon):
    """What the composer does with the segments it runs itself."""
    voice = voice_with(duration_addon, stack=DURATION_STACK_WITH_GAINS)
    again = round_trip(voice.plan)
    with pytest.raises(RuntimeError, match="has no block here"):
        again.segments[1].head_block  # noqa: B018
    tail = [s.built(voice.env) for s in again.segments[1:]]
    assert tail == list(voice.plan.segments[1:])
    sentence = voice.features("Hello there.")
    features = run_sequence(voice.plan.sequence, sentence)
    upstream = stream_segments(voice.plan.segments[:1], features, None)
    ours = torch.cat([c.core for c in stream_segments(tail, features, upstream)])
    whole = torch.cat([c.core for c in stream_local(voice.plan, sentence)])
    assert torch.equal(ours, whole)


def test_a_plan_missing_a_key_says_which():
    data = {"name": "x"}
    with pytest.raises(KeyError, match="plan: no 'addon_path'"):
        Plan.from_dict(data)


def test_a_missing_key_of_a_leaf_is_named_with_where_it_is(duration_addon):
    data = voice_with(duration_addon).plan.to_dict()
    del data["segments"][0]["steps"][1]["leaf"]["path"]
    with pytest.raises(KeyError, match=r"plan\.segments\[0\]\.steps\[1\]\.leaf: no 'path'"):
        Plan.from_dict(data)


def test_every_deployment_of_a_voice_has_its_name_kind_and_options_from_one_place(duration_addon):
    placement = {
        "default": {"num_cpus": 0.1},
        "blocks": {"Encoder": {"num_cpus": 2}, "Vocoder": {"group": "universal"}},
    }
    plan = voice_with(duration_addon, placement=placement).plan
    found = {d.key: d for d in leaf_deployments(plan)}
    assert [(k, d.kind) for k, d in found.items()] == [
        ("Encoders", "sequence"),
        ("Upsampler", "source"),
        ("Decoder", "chunk"),
        ("Vocoder@universal", "chunk"),
    ]
    encoders = found["Encoders"]
    assert encoders.options["ray_actor_options"]["num_cpus"] == 2  # the Encoder entry
    assert (encoders.options["name"], encoders.group, encoders.app) == ("Encoders", None, None)
    assert found["Decoder"].options["ray_actor_options"]["num_cpus"] == 0.1
    vocoder = found["Vocoder@universal"]
    assert (vocoder.options["name"], vocoder.group, vocoder.app) == (
        "Vocoder",
        "universal",
        "group-universal-vocoder",
    )
    assert all(d.options["max_ongoing_requests"] == 1024 for d in found.values())
    composer = composer_options(plan)
    assert composer["name"] == "Composer"
    assert composer["ray_actor_options"]["num_cpus"] == 0.1


def test_a_fused_block_runs_in_the_composer_only_where_it_is_placed_like_the_composer(
    duration_addon,
):
    """`fuse` takes a block into its composer's process, unless it is grouped with other
    voices or placed otherwise (another device, other resources, other replicas): fusing stops
    there, and the serve config lists only what keeps a deployment."""
    placement = {
        "default": {"num_cpus": 0.1, "fuse": True},
        "blocks": {
            "Encoder": {"resources": {"inferentia": 1}},
            "Upsampler": {"autoscaling": {"min_replicas": 1, "max_replicas": 3}},
            "Vocoder": {"group": "universal"},
        },
    }
    plan = voice_with(duration_addon, placement=placement).plan
    fused = {d.key: d.fused for d in leaf_deployments(plan)}
    assert fused == {
        "Encoders": False,
        "Upsampler": False,
        "Decoder": True,
        "Vocoder@universal": False,
    }
    unfused = voice_with(duration_addon, placement={"blocks": {"Decoder": {"num_gpus": 1}}}).plan
    assert not any(d.fused for d in leaf_deployments(unfused))  # `fuse` is off by default


def test_the_serve_config_lists_no_deployment_for_a_fused_block(voices_dir):
    from voicestack.serve_app.serve_config import serve_config

    placement = {"default": {"num_cpus": 0.1, "fuse": True}, "blocks": {"Decoder": {"num_cpus": 1}}}
    config = serve_config([str(voices_dir / "test-duration")], placement, check_resources=False)
    (voice,) = [a for a in config["applications"] if a["name"] == "voice-test-duration"]
    assert [d["name"] for d in voice["deployments"]] == ["Decoder", "Composer"]


def test_deployments_of_a_voice_with_a_later_segment_leave_it_to_the_composer(duration_addon):
    plan = voice_with(duration_addon, stack=DURATION_STACK_WITH_GAINS).plan
    assert [d.key for d in leaf_deployments(plan)] == [
        "Encoder",
        "Encoder-2",
        "Upsampler",
        "Decoder",
    ]


def test_the_composer_describes_the_voice_as_get_voices_lists_it(duration_addon):
    plan = voice_with(duration_addon, placement={"default": {"num_cpus": 0.1}}).plan
    composer = Composer.__new__(Composer)  # only what describe needs
    composer.plan = round_trip(plan)
    described = composer.describe()
    assert list(described) == [
        "name",
        "addon_path",
        "architecture",
        "language",
        "sample_rate",
        "hop_length",
        "n_mels",
        "placement",
        "frontend",
        "stack",
        "speakers",
        "speed",
        "word_timestamps",
    ]
    assert described["placement"]["default"] == {"num_cpus": 0.1}  # only what was set
    assert described["stack"][0]["type"] == "StreamablePipeline"
    assert (described["speakers"], described["speed"], described["word_timestamps"]) == (
        [],
        True,
        True,
    )
