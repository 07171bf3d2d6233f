"""Chunks carry the context their consumer needs, taken from their neighbours."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from voicestack.blocks.core.chunk import Chunk, concat_cores, split_chunk, with_context


def chunked(frames: torch.Tensor, sizes: list[int]) -> list[Chunk]:
    chunks, start = [], 0
    for size in sizes:
        end = min(frames.shape[0], start + size)
        chunks.append(Chunk(frames[start:end], start=start, is_last=end == frames.shape[0]))
        start = end
        if end == frames.shape[0]:
            break
    return chunks


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 120),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=200),
    left=st.integers(0, 20),
    right=st.integers(0, 20),
)
def test_each_chunk_gets_exactly_the_context_the_whole_sequence_has_around_it(
    total, sizes, left, right
):
    frames = torch.arange(total, dtype=torch.float32).unsqueeze(1)
    sizes = sizes + [total]  # make sure the sizes cover the sequence
    out = list(with_context(chunked(frames, sizes), left, right))
    assert concat_cores(out).equal(frames)
    for c in out:
        lo, hi = max(0, c.start - left), min(total, c.end + right)
        assert c.frames.equal(frames[lo:hi]), (c.start, c.left, c.right)
        assert (c.left, c.right) == (c.start - lo, hi - c.end)
    assert [c.is_last for c in out] == [False] * (len(out) - 1) + [True]


def test_a_chunk_is_held_back_only_until_its_right_context_has_arrived():
    frames = torch.arange(10.0).unsqueeze(1)
    source = iter(chunked(frames, [4, 4, 2]))
    seen = []

    def upstream():
        for c in source:
            seen.append(c.start)
            yield c

    stream = with_context(upstream(), 2, 2)
    first = next(stream)
    assert first.start == 0 and first.right == 2
    assert seen == [0, 4]  # the second chunk was needed for the first one's right context


def test_non_contiguous_chunks_are_refused():
    a = Chunk(torch.zeros(3, 1), start=0)
    b = Chunk(torch.zeros(3, 1), start=5, is_last=True)
    with pytest.raises(ValueError, match="not contiguous"):
        list(with_context([a, b], 1, 1))


@given(
    length=st.integers(1, 60),
    left=st.integers(0, 6),
    right=st.integers(0, 6),
    window=st.integers(1, 40),
)
def test_split_pieces_cover_the_core_and_keep_their_context(length, left, right, window):
    if window < left + right + 1:
        with pytest.raises(ValueError):
            split_chunk(Chunk(torch.zeros(length, 1), 0), window, left, right)
        return
    frames = torch.arange(length + 2 * 6, dtype=torch.float32).unsqueeze(1)
    chunk = Chunk(frames, start=100, left=6, right=6, is_last=True)
    pieces = split_chunk(chunk, window, left, right)
    assert torch.cat([p.core for p in pieces]).equal(chunk.core)
    for p in pieces:
        assert p.frames.shape[0] <= window
        assert p.left == left and p.right == right  # the chunk had enough context around it
    assert pieces[-1].is_last and not any(p.is_last for p in pieces[:-1])


def test_a_chunk_survives_pickling_as_it_travels_between_replicas():
    """Chunks cross process boundaries (Ray object refs); what arrives is the same chunk, with
    frames a writable tensor even when the bytes came from a read-only buffer."""
    import pickle

    import numpy as np

    chunk = Chunk(torch.arange(12.0).reshape(6, 2)[1:], start=4, left=1, right=2, is_last=True)
    back = pickle.loads(pickle.dumps(chunk, protocol=5))
    assert (back.start, back.left, back.right, back.is_last) == (4, 1, 2, True)
    assert torch.equal(back.frames, chunk.frames)

    frozen = chunk.frames.numpy().copy()
    frozen.flags.writeable = False
    rebuilt = chunk.__reduce__()[0](frozen, 0, 0, 0, False)
    rebuilt.frames[0, 0] = -1.0  # a writable copy: the read-only buffer is untouched
    assert frozen[0, 0] == chunk.frames[0, 0] and isinstance(frozen, np.ndarray)
