"""A network of an addon, loaded safely and called through its shape policy.

Blocks hand the network unbatched tensors by name; this adds the batch axis, builds the `mask`
input, pads to a static size or splits past the largest one when the placement says so, and
removes the padding from the outputs. Host-side work stays here, around the one device call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voicestack.addons.format import NetworkSpec, TensorSpec
from voicestack.blocks.errors import Problem
from voicestack.placement.shapes import StaticShapes, split_at_boundaries

if TYPE_CHECKING:
    import torch
    from voicestack.placement.config import BlockPlacement

MASK = "mask"


@dataclass(frozen=True)
class NetworkCall:
    """One recorded call: the shapes the network saw, and the real length before padding."""

    shapes: dict[str, tuple[int, ...]]
    length: int | None


class Network:
    """One network on one device, under one shape policy.

    The host-side work (batch axis, mask, padding, splitting, trimming) is here; a backend
    (`ExportedNetwork` for torch.export archives, `OnnxNetwork` for ONNX models) only runs the
    batched call on the device (`_forward`).
    """

    def __init__(self, name: str, spec: NetworkSpec, placement: BlockPlacement, max_batch: int):
        import torch

        self.name = name
        self.spec = spec
        self.device = torch.device(placement.device)
        self.shapes = placement.shapes
        #: How many items one call may take (1 for a network exported with a fixed batch of 1).
        self.max_batch = max_batch
        #: The longest input one call takes (declared, or the archive's exported bound).
        self.max_length = spec.max_length
        #: Shapes of every call, by input name, while `recording` is set (tests, diagnostics).
        self.recording = False
        self.calls: list[NetworkCall] = []

    def ready(self) -> Network:
        """Put the network on its device now (a replica does this at start, to fail early)."""
        return self

    def _forward(self, args: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """One call on batched inputs (in the declared order); the outputs in declared order."""
        raise NotImplementedError

    @property
    def length_inputs(self) -> list[TensorSpec]:
        return [t for t in self.spec.inputs if t.length_axis is not None]

    def run(
        self, inputs: dict[str, torch.Tensor], boundaries: list[int] | None = None
    ) -> dict[str, torch.Tensor]:
        """Call the network on unbatched `inputs`; return its unbatched outputs by name.

        `boundaries` are the positions where the input may be split (word starts) if it is
        longer than the largest static size. Padding is masked and removed from the outputs.
        """
        import torch

        missing = [t.name for t in self.spec.inputs if t.name != MASK and t.name not in inputs]
        if missing:
            raise ValueError(f"network {self.name!r}: missing inputs {missing}")
        length = self._length(inputs)
        if length is None:
            return self._call(inputs, None, None)
        # Past the longest input the network takes, the input is cut (at word starts where it
        # can be) rather than refused: a very long sentence is still spoken.
        limits = [n for n in (self.shapes.max_size, self.max_length) if n is not None]
        max_size = min(limits) if limits else None
        if max_size is None or length <= max_size:
            return self._call(inputs, length, self.shapes.padded_size(length))
        pieces = split_at_boundaries(length, boundaries or [], max_size)
        outs = [
            self._call(self._slice(inputs, s, e), e - s, self.shapes.padded_size(e - s))
            for s, e in pieces
        ]
        result = {}
        for spec in self.spec.outputs:
            axis = spec.length_axis
            if axis is None:  # not length-dependent: the pieces agree only if it is constant
                result[spec.name] = outs[0][spec.name]
            else:
                result[spec.name] = torch.cat([o[spec.name] for o in outs], dim=axis - 1)
        return result

    def _length(self, inputs: dict[str, torch.Tensor]) -> int | None:
        lengths = {
            t.name: inputs[t.name].shape[_axis(t) - 1]
            for t in self.length_inputs
            if t.name in inputs and t.name != MASK
        }
        if len(set(lengths.values())) > 1:
            raise ValueError(f"network {self.name!r}: inputs disagree on length: {lengths}")
        return next(iter(lengths.values()), None)

    def _slice(
        self, inputs: dict[str, torch.Tensor], start: int, end: int
    ) -> dict[str, torch.Tensor]:
        out = dict(inputs)
        for t in self.length_inputs:
            if t.name in out:
                out[t.name] = out[t.name].narrow(_axis(t) - 1, start, end - start)
        return out

    def run_batch(self, items: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        """Call the network once on several unbatched inputs (chunks of different streams),
        padded to a common length (under a static policy, to a size it was exported for).

        Every layer masks its input, so a padded item computes what it computes alone: the
        results equal one `run` per item. Items must fit in one call (no splitting here).
        """
        found = [self._length(inputs) for inputs in items]
        lengths = [n for n in found if n is not None]
        if len(lengths) < len(found):
            raise ValueError(f"network {self.name!r}: batching needs a length axis")
        # A network without a mask input (a HiFi-GAN generator) pads with its own zeros at
        # every layer's edge, which padding the input cannot imitate: only items of one length
        # share a call.
        groups: dict[int | None, list[int]] = {}
        for i, n in enumerate(lengths):
            groups.setdefault(None if self.takes_mask else n, []).append(i)
        results: list[dict[str, torch.Tensor] | None] = [None] * len(items)
        for members in groups.values():
            for start in range(0, len(members), self.max_batch):
                part = members[start : start + self.max_batch]
                longest = max(lengths[i] for i in part)
                outs = self._call_batch(
                    [items[i] for i in part],
                    [lengths[i] for i in part],
                    self.shapes.padded_size(longest),
                )
                for i, out in zip(part, outs, strict=True):
                    results[i] = out
        return results  # type: ignore[return-value]

    @property
    def takes_mask(self) -> bool:
        return any(t.name == MASK for t in self.spec.inputs)

    def _call(
        self, inputs: dict[str, torch.Tensor], length: int | None, size: int | None
    ) -> dict[str, torch.Tensor]:
        return self._call_batch([inputs], [length], size)[0]

    def _call_batch(
        self, items: list[dict[str, torch.Tensor]], lengths: list, size: int | None
    ) -> list[dict[str, torch.Tensor]]:
        import torch

        args = []
        for t in self.spec.inputs:
            rows = []
            for inputs, length in zip(items, lengths, strict=True):
                if t.name == MASK and t.name not in inputs:
                    assert length is not None and size is not None
                    x = torch.zeros(size, dtype=torch.float32)
                    x[:length] = 1.0
                else:
                    x = inputs[t.name]
                    if t.length_axis is not None and size is not None and size > length:
                        axis = t.length_axis - 1
                        pad = list(x.shape)
                        pad[axis] = size - length
                        x = torch.cat([x, x.new_zeros(pad)], dim=axis)
                rows.append(x)
            args.append(torch.stack(rows).to(self.device))
        if self.recording:
            shapes = {t.name: tuple(a.shape) for t, a in zip(self.spec.inputs, args, strict=True)}
            for length in lengths:
                self.calls.append(NetworkCall(shapes, length))
        raw = self._forward(args)
        results = []
        for i, length in enumerate(lengths):
            outs = {}
            for spec, y in zip(self.spec.outputs, raw, strict=True):
                y = y[i].to("cpu")
                if spec.length_axis is not None and length is not None and size != length:
                    y = y.narrow(spec.length_axis - 1, 0, length * spec.length_scale)
                outs[spec.name] = y
            results.append(outs)
        return results

    def warm_up(self) -> None:
        """Run every static size once, so no request pays for a first call (a compile on a
        static-shape accelerator)."""
        import torch

        if not isinstance(self.shapes, StaticShapes):
            return
        for size in self.shapes.sizes:
            inputs = {}
            for t in self.spec.inputs:
                if t.name == MASK:
                    continue
                shape = [
                    size if (isinstance(d, str) and d.startswith("length")) else d
                    for d in t.shape[1:]
                ]
                if any(isinstance(d, str) for d in shape):
                    return  # a dim we cannot invent (e.g. state size): warm on first use instead
                dtype = torch.long if t.dtype == "int64" else torch.float32
                inputs[t.name] = torch.zeros(shape, dtype=dtype)
            self.run(inputs)


class ExportedNetwork(Network):
    """A torch.export archive, run by torch on the placement's device."""

    def __init__(self, name: str, spec: NetworkSpec, program: Any, placement: BlockPlacement):
        super().__init__(name, spec, placement, exported_batch_limit(program, spec))
        # Moved to its device on first use (`ready`), so a process that only builds and checks
        # a voice (a deploy-time builder on a node without the device) never touches it.
        self.module = program.module()
        self._on_device = self.device.type == "cpu"
        bounds = exported_length_range(program, spec)
        if bounds is not None and bounds[1] < 2**31 - 1:
            self.max_length = min(bounds[1], self.max_length or bounds[1])

    def ready(self) -> Network:
        if not self._on_device:
            self.module = self.module.to(self.device)
            self._on_device = True
        return self

    def _forward(self, args: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        import torch

        self.ready()
        with torch.inference_mode():
            raw = self.module(*args)
        return tuple(raw) if isinstance(raw, (tuple, list)) else (raw,)


def exported_batch_limit(program: Any, spec: NetworkSpec) -> int:
    """The largest batch the archive takes: its batch dim's upper bound, or the fixed size."""
    import torch

    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    node = placeholders.get(spec.inputs[0].name) if spec.inputs else None
    if node is None or "val" not in node.meta or node.meta["val"].dim() == 0:
        return 1
    dim = node.meta["val"].shape[0]
    if not isinstance(dim, torch.SymInt):
        return int(dim)
    bounds = program.range_constraints.get(dim.node.expr)
    if bounds is None or not bounds.upper.is_finite:
        return 256
    return max(1, int(bounds.upper))


def exported_length_range(program: Any, spec: NetworkSpec) -> tuple[int, int] | None:
    """The lengths the archive was exported for, along the first input's `length` axis, or
    None when that axis is not dynamic (or there is none)."""
    import torch

    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    for t in spec.inputs:
        node = placeholders.get(t.name)
        if t.length_axis is None or node is None:
            continue
        dim = node.meta["val"].shape[t.length_axis]
        if not isinstance(dim, torch.SymInt):
            return (int(dim), int(dim))
        bounds = program.range_constraints.get(dim.node.expr)
        if bounds is None:
            return None
        upper = bounds.upper
        return int(bounds.lower), int(upper) if upper.is_finite else 2**31 - 1
    return None


def check_static_sizes(program: Any, spec: NetworkSpec, shapes: Any, key: str) -> list[Problem]:
    """Static sizes must be lengths the archive was exported for."""
    if not isinstance(shapes, StaticShapes):
        return []
    bounds = exported_length_range(program, spec)
    if bounds is None:
        return []
    outside = [s for s in shapes.sizes if not bounds[0] <= s <= bounds[1]]
    if outside:
        return [
            Problem(
                key,
                f"static sizes {outside} are outside the lengths the archive was exported for ({bounds[0]}..{bounds[1]})",
            )
        ]
    return []


def check_signature(program: Any, spec: NetworkSpec, key: str) -> list[Problem]:
    """Compare an exported program's inputs and outputs with what the addon declares.

    Names of inputs, and count, rank, dtype and fixed dims of inputs and outputs, must match:
    blocks rely on the declaration, so a mismatch is an error at load, not at the first request.
    """
    import torch

    problems: list[Problem] = []
    sig = program.graph_signature
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    user_inputs = list(sig.user_inputs)
    declared = [t.name for t in spec.inputs]
    if user_inputs != declared:
        problems.append(
            Problem(f"{key}.inputs", f"declared {declared}, the archive takes {user_inputs}")
        )
    else:
        for t in spec.inputs:
            problems += _compare(placeholders[t.name].meta.get("val"), t, f"{key}.inputs.{t.name}")
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    values = [
        a.meta.get("val") if isinstance(a, torch.fx.Node) else None for a in output_node.args[0]
    ]
    values = values[: len(sig.user_outputs)] if len(values) > len(sig.user_outputs) else values
    if len(values) != len(spec.outputs):
        problems.append(
            Problem(
                f"{key}.outputs",
                f"declared {len(spec.outputs)} outputs, the archive returns {len(values)}",
            )
        )
    else:
        for t, v in zip(spec.outputs, values, strict=True):
            problems += _compare(v, t, f"{key}.outputs.{t.name}")
    return problems


def _compare(value: Any, spec: TensorSpec, key: str) -> list[Problem]:
    import torch

    if not isinstance(value, torch.Tensor):
        return [Problem(key, "the archive has no tensor here")]
    dtype = {"float32": torch.float32, "int64": torch.int64}[spec.dtype]
    problems = []
    if value.dtype != dtype:
        problems.append(Problem(key, f"declared dtype {spec.dtype}, the archive has {value.dtype}"))
    if value.dim() != len(spec.shape):
        problems.append(
            Problem(key, f"declared rank {len(spec.shape)}, the archive has {value.dim()}")
        )
        return problems
    for i, (dim, actual) in enumerate(zip(spec.shape, value.shape, strict=True)):
        if isinstance(dim, int) and isinstance(actual, int) and dim != actual:
            problems.append(Problem(key, f"dim {i}: declared {dim}, the archive has {actual}"))
    return problems


def _axis(t: TensorSpec) -> int:
    """The length axis of an input among `Network.length_inputs` (which have one)."""
    assert t.length_axis is not None
    return t.length_axis
