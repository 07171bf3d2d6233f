"""Placement as Ray sees it: actor options per block, and blocks no node can ever host."""

import pytest
from voicestack.blocks.errors import ConfigError, Problem
from voicestack.placement.config import BlockPlacement
from voicestack.placement.ray_options import (
    Requirement,
    actor_options,
    cluster_nodes,
    unsatisfiable,
)

HEAD = {"CPU": 8.0, "memory": 1e10, "object_store_memory": 1e9, "node:10.0.0.1": 1.0}
INFERENTIA = {"CPU": 4.0, "memory": 1e10, "inferentia": 2.0, "node:10.0.0.2": 1.0}
GPU = {"CPU": 4.0, "GPU": 1.0, "memory": 1e10, "node:10.0.0.3": 1.0}
CLUSTER = [HEAD, INFERENTIA, GPU]


def test_options_carry_cpus_gpus_and_custom_resources():
    p = BlockPlacement(device="cuda:0", num_cpus=1, num_gpus=0.5, resources={"inferentia": 1})
    assert actor_options(p, "voice 'x': block Decoder") == {
        "num_cpus": 1,
        "num_gpus": 0.5,
        "resources": {"inferentia": 1},
    }


def test_options_leave_out_resources_when_none_are_asked():
    assert actor_options(BlockPlacement()) == {"num_cpus": 0.1, "num_gpus": 0}


def test_options_do_not_share_the_placements_resources_dict():
    p = BlockPlacement(resources={"inferentia": 1})
    actor_options(p)["resources"]["inferentia"] = 5
    assert p.resources == {"inferentia": 1}


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_device_without_gpus_is_refused_naming_the_key(device):
    with pytest.raises(ConfigError, match="device .* needs num_gpus > 0") as err:
        actor_options(BlockPlacement(device=device), "voice 'x': block Decoder")
    assert [p.key for p in err.value.problems] == ["voice 'x': block Decoder"]


def test_requirements_each_met_by_some_node_are_satisfiable():
    requirements = [
        Requirement("x", "Encoders", {"num_cpus": 2, "num_gpus": 0}),
        Requirement("x", "Decoder", {"num_cpus": 1, "num_gpus": 0, "resources": {"inferentia": 2}}),
        Requirement("y", "Decoder", {"num_cpus": 1, "num_gpus": 1}),
        Requirement("y", "Vocoder", {"num_cpus": 0, "num_gpus": 0.5}),
    ]
    assert unsatisfiable(requirements, CLUSTER) == []


def test_requirements_are_checked_alone_not_summed():
    # Three one-GPU replicas on a one-GPU cluster queue; none of them can never run.
    requirements = [
        Requirement("x", f"Decoder{i}", {"num_cpus": 1, "num_gpus": 1}) for i in range(3)
    ]
    assert unsatisfiable(requirements, CLUSTER) == []


def test_a_custom_resource_no_node_offers_is_named_with_voice_and_block():
    requirements = [
        Requirement("x", "Encoders", {"num_cpus": 1, "num_gpus": 0}),
        Requirement("narrator", "Decoder", {"num_cpus": 1, "num_gpus": 0, "resources": {"tpu": 1}}),
    ]
    [problem] = unsatisfiable(requirements, CLUSTER)
    assert problem.key == "voice 'narrator': block Decoder"
    assert problem.message.startswith("needs {'tpu': 1} but no node offers 'tpu' (nodes offer: ")
    assert "CPU, GPU, inferentia, memory" in problem.message
    assert "node:" not in problem.message


def test_more_gpus_than_the_largest_node_has_are_unsatisfiable():
    [problem] = unsatisfiable(
        [Requirement("x", "Decoder", {"num_cpus": 1, "num_gpus": 2})], CLUSTER
    )
    assert problem == Problem("voice 'x': block Decoder", "needs GPU 2 but the largest node has 1")


def test_more_custom_resource_than_any_node_has_is_unsatisfiable():
    req = Requirement(
        "x", "Decoder", {"num_cpus": 1, "num_gpus": 0, "resources": {"inferentia": 3}}
    )
    [problem] = unsatisfiable([req], CLUSTER)
    assert problem.message == "needs inferentia 3 but the largest node has 2"


def test_resources_found_only_on_different_nodes_are_unsatisfiable():
    req = Requirement(
        "x", "Decoder", {"num_cpus": 1, "num_gpus": 1, "resources": {"inferentia": 1}}
    )
    [problem] = unsatisfiable([req], CLUSTER)
    assert problem.key == "voice 'x': block Decoder"
    assert "no node has them all" in problem.message
    assert "GPU 1" in problem.message and "inferentia 1" in problem.message


def test_zero_amounts_are_not_needs():
    req = Requirement("x", "Decoder", {"num_cpus": 0, "num_gpus": 0, "resources": {"tpu": 0}})
    assert unsatisfiable([req], [{"memory": 1e9}]) == []


def test_with_no_alive_nodes_every_real_need_is_unsatisfiable():
    [problem] = unsatisfiable([Requirement("x", "Encoders", {"num_cpus": 1, "num_gpus": 0})], [])
    assert "no node offers 'CPU' (nodes offer: no alive nodes)" in problem.message


def test_actor_options_of_placements_feed_the_check():
    p = BlockPlacement(device="cuda", num_cpus=1, num_gpus=1)
    req = Requirement("x", "Decoder", actor_options(p, "voice 'x': block Decoder"))
    assert unsatisfiable([req], [HEAD, INFERENTIA]) == [
        Problem(
            "voice 'x': block Decoder",
            "needs {'GPU': 1} but no node offers 'GPU' (nodes offer: CPU, inferentia, memory, object_store_memory)",
        )
    ]


@pytest.mark.ray
def test_cluster_nodes_report_a_real_local_clusters_custom_resources():
    import ray

    ray.init(address="local", num_cpus=1, resources={"inferentia": 1}, include_dashboard=False)
    try:
        nodes = cluster_nodes()
        assert len(nodes) == 1
        assert nodes[0]["inferentia"] == 1 and nodes[0]["CPU"] == 1
        req = Requirement(
            "x", "Decoder", {"num_cpus": 1, "num_gpus": 0, "resources": {"inferentia": 1}}
        )
        assert unsatisfiable([req], nodes) == []
    finally:
        ray.shutdown()
