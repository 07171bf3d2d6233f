"""Placement across nodes, on a real multi-node Ray (`ray.cluster_utils.Cluster`): a CPU head,
a node offering {"inferentia": 2}, and a node declaring one GPU.

The GPU node is a fake in one respect only: it declares a GPU to Ray, but this machine has no
CUDA, so the decoder's torch device stays "cpu" there. Ray's scheduling is the real thing.
"""

from __future__ import annotations

import pytest
from voicestack.blocks.errors import ConfigError
from voicestack.serve_app.serve_config import serve_config

from .ray_service import apply_config, free_port, start_serve

pytestmark = pytest.mark.ray

STATIC = [32, 64, 128]
PLACEMENT = {
    # Fused where placed like the composer: the Upsampler and Vocoder; fusing stops at the
    # inferentia encoders and the GPU decoder.
    "default": {"num_cpus": 0.1, "fuse": True},
    "blocks": {
        "Encoder": {"resources": {"inferentia": 1}, "shapes": {"kind": "static", "sizes": STATIC}},
        "Decoder": {"num_gpus": 0.5},
    },
}
LONG_SENTENCE = (
    "The quick brown fox, who had been running through the wide green fields since early "
    "morning, finally jumped over the lazy dog that was sleeping under the old oak tree by "
    "the river, and then it ran on and on until the sun went down."
)


@pytest.fixture(scope="module")
def cluster(voices_dir):
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster
    from voicestack.serve_app.launch import ordinary_worker_priority

    ordinary_worker_priority()  # each node's raylet reads it, as a service's would
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    inferentia = c.add_node(num_cpus=2, resources={"inferentia": 2})
    gpu = c.add_node(num_cpus=2, num_gpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    port = free_port()
    start_serve(port)
    addon = str(voices_dir / "test-duration")
    apply_config(serve_config([addon], PLACEMENT, port=port))
    yield {"inferentia": inferentia.node_id, "gpu": gpu.node_id, "addon": addon, "port": port}
    serve.shutdown()
    ray.shutdown()
    c.shutdown()


def _handle(deployment: str):
    from ray import serve

    return serve.get_deployment_handle(deployment, app_name="voice-test-duration")


def test_each_block_runs_on_the_node_its_placement_asks_for(cluster):
    where = _handle("Composer").where.remote().result()
    assert where["Encoders"]["node_id"] == cluster["inferentia"]
    assert where["Decoder"]["node_id"] == cluster["gpu"]
    assert where["Decoder"]["gpu_ids"]  # Ray gave the replica the node's GPU
    # Replicas are the service, not background work: they run at ordinary priority.
    assert {w["niceness"] for w in where.values()} == {0}


def test_fusing_stops_at_device_boundaries(cluster):
    """The blocks placed like the composer run in its process; the encoders (inferentia) and
    the decoder (GPU) keep deployments on their nodes, and a sentence passes through all."""
    from ray import serve

    deployments = set(serve.status().applications["voice-test-duration"].deployments)
    assert deployments == {"Composer", "Encoders", "Decoder"}
    where = _handle("Composer").where.remote().result()
    fused = {key for key, w in where.items() if w.get("fused")}
    assert fused == {"Upsampler", "Vocoder"}
    assert len({where[key]["pid"] for key in fused}) == 1  # the composer's process
    assert where["Upsampler"]["pid"] not in (where["Encoders"]["pid"], where["Decoder"]["pid"])


def test_a_static_shape_placement_runs_the_encoders_only_at_exported_sizes(cluster):
    """The encoders' replica on the inferentia node runs its networks under the static sizes
    its placement gave (tests/test_static_shapes.py shows what that policy does to each call:
    padding to the next size, splitting at word starts), and a sentence longer than the
    largest size is spoken whole through it."""
    where = _handle("Composer").where.remote().result()
    policies = where["Encoders"]["shapes"]
    assert policies, "the Encoders replica reports no network"
    assert all(p == {"kind": "static", "sizes": STATIC} for p in policies.values()), policies
    assert where["Decoder"]["shapes"]["decoder"]["kind"] == "dynamic"

    async def consume():
        messages = []
        stream = _handle("Composer").options(stream=True).synthesize.remote(LONG_SENTENCE)
        async for message in stream:
            messages.append(message)
        return messages

    import asyncio

    messages = asyncio.run(consume())
    assert messages[-1]["type"] == "end"
    assert sum(m["type"] == "audio" for m in messages) > 1


@pytest.mark.parametrize(
    ("blocks", "words"),
    [
        ({"Decoder": {"resources": {"tpu": 1}}}, ["block Decoder", "'tpu'"]),
        ({"Vocoder": {"num_gpus": 2}}, ["block Vocoder", "GPU 2", "largest node has 1"]),
        (
            {"Encoder": {"num_gpus": 1, "resources": {"inferentia": 1}}},
            ["block Encoders", "no node has them all"],
        ),
    ],
)
def test_a_placement_no_node_can_satisfy_fails_at_deploy_time_naming_block_voice_and_resource(
    cluster, blocks, words
):
    from voicestack.serve_app.app import voice_app

    with pytest.raises(ConfigError) as error:
        voice_app({"addon": cluster["addon"], "placement": {"blocks": blocks}})
    message = str(error.value)
    assert "voice 'test-duration'" in message
    assert all(w in message for w in words), message


def test_a_serve_deploy_of_an_unsatisfiable_placement_fails_fast_with_the_same_message(cluster):
    config = serve_config([cluster["addon"]], PLACEMENT, port=cluster["port"])
    unsatisfiable = {
        "name": "voice-unsatisfiable",
        "route_prefix": None,
        "import_path": "voicestack.serve_app.app:voice_app",
        "args": {
            "addon": cluster["addon"],
            "placement": {"blocks": {"Decoder": {"resources": {"tpu": 1}}}},
        },
    }
    config["applications"].append(unsatisfiable)
    with pytest.raises(RuntimeError, match=r"block Decoder.*'tpu'"):
        # Fast: the build task fails as soon as it has loaded the voice (seconds on an idle
        # machine; over a minute was seen on one loaded far beyond one CPU-bound process),
        # where an unplaceable replica would otherwise leave the app deploying for ever.
        apply_config(config, timeout_s=300)
