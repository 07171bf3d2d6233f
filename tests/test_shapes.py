"""Static shape policy arithmetic: buckets by bisect, splits at word boundaries."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from voicestack.placement.config import Placement, parse_placement
from voicestack.placement.shapes import DynamicShapes, StaticShapes, split_at_boundaries


def test_static_pads_to_the_smallest_bucket_that_fits():
    shapes = StaticShapes(sizes=(64, 32, 128))
    assert shapes.sizes == (32, 64, 128)
    assert [shapes.padded_size(n) for n in (1, 32, 33, 64, 100, 128)] == [32, 32, 64, 64, 128, 128]
    with pytest.raises(ValueError, match="exceeds the largest static size 128"):
        shapes.padded_size(129)


def test_dynamic_runs_at_the_inputs_own_length():
    assert DynamicShapes().padded_size(77) == 77 and DynamicShapes().max_size is None


def test_static_sizes_must_be_positive():
    with pytest.raises(ValidationError, match="positive"):
        StaticShapes(sizes=(0, 32))


@given(
    length=st.integers(1, 400),
    boundaries=st.lists(st.integers(0, 400), max_size=80),
    max_size=st.integers(1, 64),
)
def test_splits_cover_the_input_and_respect_the_largest_size(length, boundaries, max_size):
    pieces = split_at_boundaries(length, boundaries, max_size)
    assert pieces[0][0] == 0 and pieces[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))
    assert all(0 < e - s <= max_size for s, e in pieces)


def test_splits_fall_on_word_starts_when_words_fit():
    # words start at 0, 10, 25, 31, 50; largest size 30
    assert split_at_boundaries(60, [0, 10, 25, 31, 50], 30) == [(0, 25), (25, 50), (50, 60)]


def test_a_word_longer_than_the_largest_size_is_cut_inside():
    assert split_at_boundaries(70, [0, 65], 30) == [(0, 30), (30, 60), (60, 70)]


def test_placement_falls_back_key_by_key_from_voice_to_block_to_default():
    placement = parse_placement(
        {
            "default": {"device": "cpu", "num_cpus": 0.5},
            "blocks": {"Encoder": {"shapes": {"kind": "static", "sizes": [32, 64]}}},
            "voices": {"v1": {"Encoder": {"num_cpus": 1}}},
        }
    )
    enc = placement.for_block("Encoder", voice="v1")
    assert enc.num_cpus == 1 and enc.shapes.sizes == (32, 64) and enc.device == "cpu"
    assert placement.for_block("Encoder", voice="v2").num_cpus == 0.5
    assert isinstance(placement.for_block("Decoder").shapes, DynamicShapes)


def test_a_deployment_placement_overrides_the_addons_entry_by_entry():
    addon = Placement.model_validate({"blocks": {"Decoder": {"num_cpus": 2, "device": "cpu"}}})
    deploy = Placement.model_validate(
        {"blocks": {"Decoder": {"shapes": {"kind": "static", "sizes": [64]}}}}
    )
    merged = addon.overridden_by(deploy).for_block("Decoder")
    assert merged.num_cpus == 2 and merged.shapes.sizes == (64,)


def test_a_bad_placement_names_the_key():
    with pytest.raises(ValueError, match=r"blocks\.Decoder\.device"):
        parse_placement({"blocks": {"Decoder": {"device": "tpu"}}})
