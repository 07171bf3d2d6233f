"""The Serve configs in deploy/ are generated: each equals what `voicestack deploy build` writes
now, with the arguments the Makefile's `deploy-configs` target gives it."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import yaml
from voicestack.addons.recipes.test_voices import TEST_VOICES_VERSION
from voicestack.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def _recipes() -> list[list[str]]:
    """The `voicestack deploy build` command lines of the Makefile's deploy-configs target."""
    lines = (ROOT / "Makefile").read_text().split("deploy-configs:", 1)[1].splitlines()[1:]
    commands = []
    for line in lines:
        if not line.startswith("\t"):
            break
        argv = shlex.split(line.strip())
        assert argv[0].endswith("voicestack"), line
        commands.append(argv[1:])
    return commands


@pytest.fixture
def test_voices_installed(voices_dir, tmp_path, monkeypatch):
    """The test voices are what an empty search path serves; point the cache at ours."""
    (tmp_path / f"test-voices-v{TEST_VOICES_VERSION}").symlink_to(voices_dir)
    monkeypatch.setenv("VOICESTACK_CACHE", str(tmp_path))
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("argv", _recipes(), ids=lambda a: a[a.index("-o") + 1])
def test_the_committed_config_is_what_deploy_build_writes(argv, test_voices_installed, capsys):
    i = argv.index("-o")
    target = ROOT / argv[i + 1]
    assert main([*argv[:i], "-o", "-", *argv[i + 2 :]]) == 0
    assert capsys.readouterr().out == target.read_text(), (
        f"{target.name} is stale: run `make deploy-configs`"
    )


def test_the_cluster_config_places_encoders_on_inferentia_decoders_on_gpus_and_one_vocoder():
    config = yaml.safe_load((ROOT / "deploy/cluster.yaml").read_text())
    apps = {a["name"]: a for a in config["applications"]}
    voices = [a for a in apps.values() if a["name"].startswith("voice-")]
    assert len(voices) >= 3
    for app in voices:
        deployments = {d["name"]: d for d in app["deployments"]}
        # The Piper voice's ONNX encoder runs where onnxruntime runs: CPU nodes.
        onnx = app["args"]["addon"] == "joe"
        wanted = {} if onnx else {"inferentia": 1}
        assert deployments["Encoders"]["ray_actor_options"].get("resources", {}) == wanted
        decoder = deployments.get("Decoder") or deployments["AttentionDecoder"]
        assert decoder["ray_actor_options"]["num_gpus"] > 0
        assert decoder["autoscaling_config"]["max_replicas"] >= 4
        assert not {"Vocoder", "GriffinLim"} & set(deployments)  # served by the group app
    # One deployment per vocoder kind serves every voice that uses it: Griffin-Lim for the
    # espeak voices, the Piper voice's HiFi-GAN on the GPUs.
    groups = {a["name"]: a for a in apps.values() if a["name"].startswith("group-universal-")}
    served = {v["addon"]: g for g, a in groups.items() for v in a["args"]["voices"]}
    assert served == {
        "espeak-attention": "group-universal-griffinlim",
        "espeak-duration": "group-universal-griffinlim",
        "joe": "group-universal-vocoder",
    }
    (vocoder,) = groups["group-universal-vocoder"]["deployments"]
    assert vocoder["ray_actor_options"]["num_gpus"] > 0


def test_the_rayservice_embeds_the_cluster_config_and_declares_the_node_resources():
    service = yaml.safe_load((ROOT / "deploy/kuberay-rayservice.yaml").read_text())
    assert service["kind"] == "RayService"
    embedded = yaml.safe_load(service["spec"]["serveConfigV2"])
    cluster = yaml.safe_load((ROOT / "deploy/cluster.yaml").read_text())
    assert embedded == cluster
    groups = {g["groupName"]: g for g in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    assert "inferentia" in groups["inferentia"]["rayStartParams"]["resources"]
    assert groups["gpu"]["rayStartParams"]["num-gpus"] == "1"
    assert os.sep not in str(embedded["applications"][1]["args"]["addon"])  # a name, not a path
    # Every node starts Ray's workers, the service's replicas, at ordinary priority.
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    for spec in [head, *(g["template"]["spec"] for g in groups.values())]:
        assert {"name": "RAY_worker_niceness", "value": "0"} in spec["containers"][0]["env"]


@pytest.mark.parametrize("config", ["local.yaml", "cluster.yaml"])
def test_no_deployment_writes_an_access_log_line_per_call(config):
    """Serve logs every call by default: a line per chunk per block. Every deployment of the
    committed configs turns it off (errors are still logged)."""
    apps = yaml.safe_load((ROOT / "deploy" / config).read_text())["applications"]
    deployments = [d for app in apps for d in app.get("deployments", [])]
    assert deployments
    for d in deployments:
        assert d.get("logging_config", {}).get("enable_access_log") is False, d["name"]


@pytest.mark.parametrize("config", ["local.yaml", "cluster.yaml"])
def test_every_deployment_is_checked_often_enough_to_replace_a_dead_replica_quickly(config):
    """Serve notices a killed replica only at its next health check (every 10 s by default),
    and a voice whose composer died refuses requests until then. Every deployment of the
    committed configs is checked every HEALTH_CHECK_PERIOD_S; the ingress's own builder sets it
    (bench/faults.py measures the recovery)."""
    from voicestack.serve_app.app import ingress_app
    from voicestack.serve_app.deployments import HEALTH_CHECK_PERIOD_S

    assert HEALTH_CHECK_PERIOD_S <= 2
    apps = yaml.safe_load((ROOT / "deploy" / config).read_text())["applications"]
    deployments = [d for app in apps for d in app.get("deployments", [])]
    assert deployments
    for d in deployments:
        assert d.get("health_check_period_s") == HEALTH_CHECK_PERIOD_S, d["name"]
    ingress = ingress_app()._bound_deployment  # the Application's one deployment
    assert ingress._deployment_config.health_check_period_s == HEALTH_CHECK_PERIOD_S
