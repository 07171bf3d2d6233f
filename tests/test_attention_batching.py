"""Continuous batching of the attention decoder: the replica steps every stream in flight with
one call of the step network per frame, and each stream's audio is what it would be alone.

Tolerance: none, the frames are the same bits. The step network is exported so that a row's
result does not depend on the rest of the batch or on how far its encodings are padded
(addons/recipes/attention_voice.py, `AttentionStep.forward`). That is needed, not a nicety:
an ordinary export rounds a row differently as the batch changes (about 1e-6 per step), and
the loop feeds each frame back in, so within a hundred or two frames the difference grows to
whole log-mel units and a different stop frame (measured on the reference voice before the
change). The re-exported network differs from the original export by at most 1e-5 per step
at batch 1 (the sums over symbols run in a fixed order).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from voicestack.addons.loader import load_addon
from voicestack.addons.recipes import attention_voice, row_invariant
from voicestack.addons.search_path import find_voice
from voicestack.blocks.core.request import RequestOptions
from voicestack.runtime.plan import run_sequence
from voicestack.runtime.voice import build_voice
from voicestack.serve_app.stepping import Stepper

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the quiet river bank.",
    "Seven apples.",
    "Every morning the baker opens her shop before the sun rises over the hills.",
    "Why not?",
    "A traveller asked the way to the station and was given three different answers.",
    "Lights came on one by one along the harbour.",
]


@pytest.fixture(scope="module")
def voice():
    return build_voice(load_addon(find_voice("espeak-attention").path))


@pytest.fixture(scope="module")
def test_voice(voices_dir):
    """The test voice's step network is exported the same way (random weights)."""
    return build_voice(load_addon(voices_dir / "test-attention"))


@pytest.fixture(scope="module")
def decoder(voice):
    return voice.plan.segments[0].head.block


@pytest.fixture(scope="module")
def features(voice):
    request = voice.request(RequestOptions(0, None, 1.0))
    return [
        run_sequence(voice.plan.sequence, voice.features(text, request, 0)) for text in SENTENCES
    ]


def alone(decoder, features) -> torch.Tensor:
    return torch.stack([frame for frame, _, _ in decoder.frames(features["encodings"])])


def test_the_reference_attention_voice_steps_up_to_64_streams_per_call(decoder):
    assert decoder.steps_together
    assert decoder.max_streams == row_invariant.MAX_STREAMS == 64


@pytest.mark.parametrize("which", ["reference", "test"])
def test_streams_stepped_together_make_each_stream_s_frames_alone_bit_for_bit(
    which, decoder, features, test_voice
):
    if which == "test":
        decoder = test_voice.plan.segments[0].head.block
        assert decoder.steps_together and decoder.max_streams == 64
        request = test_voice.request(RequestOptions(0, None, 1.0))
        features = [
            run_sequence(test_voice.plan.sequence, test_voice.features(text, request, 0))
            for text in SENTENCES
        ]
    expected = [list(decoder.frames(f["encodings"])) for f in features]
    joins = {i: 5 * i for i in range(len(features))}  # a new stream every five steps
    active: dict[int, object] = {}
    made: dict[int, list] = {i: [] for i in joins}
    marks: dict[int, list] = {i: [] for i in joins}
    step, sizes = 0, []
    while active or step <= max(joins.values()):
        for i, at in joins.items():
            if at == step:
                active[i] = decoder.start(features[i])
        if active:
            ids = list(active)
            sizes.append(len(ids))
            for i, (frame, last, symbol) in zip(
                ids, decoder.step([active[i] for i in ids]), strict=True
            ):
                made[i].append(frame)
                marks[i].append(symbol)
                if last:
                    del active[i]  # leaves between steps; the others go on
        step += 1
    assert max(sizes) == len(features)
    for i, frames in made.items():
        assert torch.equal(torch.stack(frames), torch.stack([f for f, _, _ in expected[i]]))
        assert marks[i] == [symbol for _, _, symbol in expected[i]], SENTENCES[i]


def test_the_block_s_stream_is_a_plain_loop_over_the_step_network_at_batch_one(decoder, features):
    """The block (through `start`/`step`, as a batch of one) against the step network called
    directly, one frame at a time, as the decoder's loop always did."""
    step = decoder.network.module
    for f in features[:3]:
        memory = f["encodings"]
        frames = []
        with torch.inference_mode():
            frame, hidden = torch.zeros(1, 80), torch.zeros(1, attention_voice.HIDDEN)
            position, mask = torch.zeros(1, 1), torch.ones(1, memory.shape[0])
            for _ in range(min(4000, int(12 * memory.shape[0]))):
                frame, stop, hidden, position, _ = step(
                    frame, hidden, position, memory.unsqueeze(0), mask
                )
                frames.append(frame[0])
                if stop.item() > 0:  # sigmoid(stop) > 0.5
                    break
        chunks = list(decoder.stream(f, None))
        streamed = torch.cat([c.frames for c in chunks])
        assert torch.equal(streamed, torch.stack(frames))
        assert [c.start for c in chunks] == list(range(0, streamed.shape[0], 16))
        assert chunks[-1].is_last and sum(len(c.marks) for c in chunks) == streamed.shape[0]


def test_the_reexported_step_network_is_the_plain_export_within_1e_5_at_batch_one(decoder):
    """The bundled network against the same weights exported as the training graph's modules
    compute one step (nn.Linear, nn.GRU, einsum, softmax): what the voice shipped before."""
    plain = attention_voice.AttentionStep().eval()
    plain.load_state_dict(decoder.network.module.state_dict())
    worst = 0.0
    torch.manual_seed(0)
    with torch.inference_mode():
        for n in (1, 2, 7, 40, 150):
            args = (
                torch.randn(1, 80),
                torch.randn(1, attention_voice.HIDDEN),
                torch.rand(1, 1) * n,
                torch.randn(1, n, attention_voice.DIM),
                torch.ones(1, n),
            )
            ours = decoder.network.module(*args)
            theirs = _plain_step(plain, *args)
            worst = max(
                worst, *((a - b).abs().max().item() for a, b in zip(ours, theirs, strict=True))
            )
    assert worst <= 1e-5


def _plain_step(m, prev_frame, hidden, position, encodings, mask):
    """One step with ordinary kernels: `AttentionStep.sequence`'s computation at T = 1."""
    x = torch.relu(m.prenet(prev_frame)).unsqueeze(1)
    weights = m._attend(x, position, encodings, mask)
    context = (weights @ encodings).squeeze(1)
    _, h = m.cell(torch.cat([x.squeeze(1), context], -1).unsqueeze(1), hidden.unsqueeze(0))
    hidden = h.squeeze(0)
    frame, advance, stop = m._heads(hidden, context)
    past_end = torch.clamp(position.squeeze(-1) - (mask.sum(-1) - 0.5), min=0.0)
    return frame, stop + 20.0 * past_end, hidden, position + advance.unsqueeze(-1), weights[:, 0]


def test_a_stepper_steps_streams_together_and_a_stream_that_leaves_stops(decoder, features):
    sizes: list[int] = []
    stepper = Stepper(64, stepped=sizes.append)
    streams = [stepper.join(decoder, f, decoder.seconds_per_frame) for f in features[:4]]
    gone = stepper.join(decoder, features[4], decoder.seconds_per_frame)
    results: dict[int, torch.Tensor] = {}

    def consume(i: int) -> None:
        results[i] = torch.stack([frame for frame, _, _ in streams[i].frames()])

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    first = next(gone.frames())
    stepper.leave(gone)
    for t in threads:
        t.join(60)
    rest = list(gone.frames())  # what it had made before it left, then its end
    assert first[0].shape == (80,) and 1 + len(rest) < len(alone(decoder, features[4]))
    for i in range(4):
        assert torch.equal(results[i], alone(decoder, features[i]))
    assert max(sizes) >= 4 and stepper.active == 0


def test_when_a_step_is_full_the_stream_due_first_steps_first(decoder, features):
    """Two streams per step, three streams: the one that has made the least audio (its
    listener runs dry first) is always in the next step."""
    stepper = Stepper(2)
    a, b, c = (decoder.start(f) for f in features[:3])
    from voicestack.serve_app.stepping import Stepped

    stepper._streams = [Stepped(decoder, s, 0.0, 0.01) for s in (a, b, c)]
    for stream, deadline in zip(stepper._streams, (0.05, 0.0, 0.02), strict=True):
        stream.deadline = deadline
    batch = stepper._next_batch()
    assert [s.state for s in batch] == [b, c]


# --- through the service --------------------------------------------------------------------


@pytest.mark.ray
def test_concurrent_requests_get_a_lone_request_s_audio_from_shared_steps(voice):
    from .prometheus import REPORT_INTERVAL, scrape, value
    from .ray_service import free_port, running_service, wav_samples

    path = str(find_voice("espeak-attention").path)
    placement = {"default": {"num_cpus": 0.1}}
    with running_service(
        [path], placement, metrics_port=free_port(), env=REPORT_INTERVAL
    ) as service:
        client = service["client"]

        def post(text: str) -> np.ndarray:
            response = client.post(
                "/v1/synthesize", json={"voice": "espeak-attention", "text": text}
            )
            assert response.status_code == 200, response.text
            return wav_samples(response.content)[1]

        lone = [post(text) for text in SENTENCES]
        with ThreadPoolExecutor(len(SENTENCES)) as pool:
            together = list(pool.map(post, SENTENCES))
        for text, a, b in zip(SENTENCES, lone, together, strict=True):
            assert a.shape == b.shape, text
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, text
        name = "ray_voicestack_block_step_batch_size"
        for _ in range(60):
            samples = scrape(service["metrics_port"])
            steps = value(samples, name + "_count")
            single = value(samples, name + "_bucket", le="1.0")
            if steps and single is not None and steps > single:
                break
            import time

            time.sleep(1)
        assert steps and single is not None and steps > single  # steps of several streams
