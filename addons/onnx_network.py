"""An addon network that is an ONNX model, run by onnxruntime.

The host-side contract is the torch networks' (`Network`): unbatched tensors by name in and
out, a `mask` built from lengths, padding and trimming. onnxruntime runs the batched call:
the CPU execution provider on a `cpu` placement, CUDA's on `cuda[:N]`. The session is made on
first use (`ready`), so a deploy-time builder on a node without the device can still check the
model against its declaration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicestack.addons.format import NetworkSpec, TensorSpec
from voicestack.addons.network import Network
from voicestack.blocks.errors import ConfigError, Problem
from voicestack.placement.shapes import StaticShapes

if TYPE_CHECKING:
    import torch
    from voicestack.placement.config import BlockPlacement

#: ONNX TensorProto element types of the dtypes a declaration may name.
_ELEM_TYPES = {"float32": 1, "int64": 7}
#: The batch an ONNX model with a dynamic batch axis is given at most in one call.
DYNAMIC_BATCH_LIMIT = 256


class OnnxNetwork(Network):
    """An ONNX model on the placement's device (see the module docstring)."""

    def __init__(
        self, name: str, spec: NetworkSpec, model: bytes, graph: Any, placement: BlockPlacement
    ):
        import torch

        super().__init__(name, spec, placement, _batch_limit(graph, spec))
        self._model = model
        self._placement_device = torch.device(placement.device)
        # Inputs and outputs stay on the host: onnxruntime copies to its device itself.
        self.device = torch.device("cpu")
        self._session: Any = None
        self._outputs = [t.name for t in spec.outputs]

    @classmethod
    def load(
        cls,
        root: Path,
        file: Path,
        name: str,
        spec: NetworkSpec,
        placement: BlockPlacement,
        where: str,
    ) -> OnnxNetwork:
        """Inspect and read `file`, check it against `spec` and `placement`; AddonError with
        every problem, each naming its key."""
        import onnx
        from voicestack.addons.loader import AddonError
        from voicestack.addons.onnx_file import load_onnx_model

        problems = []
        if isinstance(placement.shapes, StaticShapes):
            problems.append(
                Problem(
                    f"{where}: shapes",
                    "ONNX networks run with dynamic shapes (onnxruntime); a static shape policy "
                    "is for accelerators that compile fixed shapes, which need a torch.export "
                    "archive of the network",
                )
            )
        model = load_onnx_model(file, root)
        graph = onnx.load_model_from_string(model).graph
        problems += check_onnx_signature(graph, spec, f"networks.{name}")
        if problems:
            raise AddonError(problems)
        return cls(name, spec, model, graph, placement)

    def ready(self) -> Network:
        if self._session is None:
            self._session = self._make_session()
            self._model = b""  # the session holds the weights now: no second copy
        return self

    def _make_session(self) -> Any:
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        # As many threads as torch uses in this process: one in a replica (several replicas
        # share the cores), all of them in a one-process runtime.
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        device = self._placement_device
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError(
                    [
                        Problem(
                            f"network {self.name!r}: device",
                            f"placed on {device}, but this onnxruntime has no CUDA execution "
                            f"provider (it has {ort.get_available_providers()}); install "
                            "onnxruntime-gpu on the GPU nodes",
                        )
                    ]
                )
            providers: list[Any] = [
                ("CUDAExecutionProvider", {"device_id": device.index or 0}),
            ]
        else:
            providers = ["CPUExecutionProvider"]
        return ort.InferenceSession(self._model, sess_options=options, providers=providers)

    def _forward(self, args: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        import torch

        self.ready()
        feed = {t.name: a.numpy() for t, a in zip(self.spec.inputs, args, strict=True)}
        return tuple(torch.from_numpy(y) for y in self._session.run(self._outputs, feed))


def _dims(value_info: Any) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def _batch_limit(graph: Any, spec: NetworkSpec) -> int:
    inputs = {i.name: i for i in graph.input}
    first = inputs.get(spec.inputs[0].name)
    dims = _dims(first) if first is not None else []
    if dims and isinstance(dims[0], int):
        return max(1, dims[0])
    return DYNAMIC_BATCH_LIMIT


def check_onnx_signature(graph: Any, spec: NetworkSpec, key: str) -> list[Problem]:
    """The model's inputs must be exactly the declared ones (by name), the declared outputs
    among its outputs; dtype, rank and fixed dims as declared. A mismatch is an error at load,
    not at the first request."""
    problems: list[Problem] = []
    initializers = {t.name for t in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in initializers}
    outputs = {o.name: o for o in graph.output}
    declared = [t.name for t in spec.inputs]
    if set(inputs) != set(declared):
        problems.append(
            Problem(f"{key}.inputs", f"declared {declared}, the model takes {list(inputs)}")
        )
    else:
        for t in spec.inputs:
            problems += _compare(inputs[t.name], t, f"{key}.inputs.{t.name}")
    for t in spec.outputs:
        if t.name not in outputs:
            problems.append(
                Problem(
                    f"{key}.outputs.{t.name}",
                    f"the model has no output {t.name!r} (it has {list(outputs)})",
                )
            )
        else:
            problems += _compare(outputs[t.name], t, f"{key}.outputs.{t.name}")
    return problems


def _compare(value_info: Any, spec: TensorSpec, key: str) -> list[Problem]:
    problems = []
    elem = value_info.type.tensor_type.elem_type
    if elem != _ELEM_TYPES[spec.dtype]:
        problems.append(
            Problem(key, f"declared dtype {spec.dtype}, the model has ONNX element type {elem}")
        )
    dims = _dims(value_info)
    if not value_info.type.tensor_type.HasField("shape"):
        return problems  # a model that does not say its shape: checked on the first call
    if len(dims) != len(spec.shape):
        problems.append(Problem(key, f"declared rank {len(spec.shape)}, the model has {len(dims)}"))
        return problems
    for i, (want, have) in enumerate(zip(spec.shape, dims, strict=True)):
        if isinstance(want, int) and isinstance(have, int) and want != have:
            problems.append(Problem(key, f"dim {i}: declared {want}, the model has {have}"))
        if isinstance(want, str) and isinstance(have, int) and want.startswith("length"):
            problems.append(
                Problem(key, f"dim {i}: declared {want!r}, the model fixes it to {have}")
            )
    return problems
