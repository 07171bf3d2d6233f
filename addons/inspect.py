"""`voicestack addon inspect`: an addon's networks, shapes, symbols and stack, as a tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _tree(node: Any, prefix: str = "") -> list[str]:
    """Render a block node ({"type": ..., children...}) as tree lines."""
    lines = []
    children = [
        (k, v)
        for k, v in node.items()
        if isinstance(v, dict)
        and "type" in v
        or (isinstance(v, list) and v and all(isinstance(x, dict) and "type" in x for x in v))
    ]
    settings = {k: v for k, v in node.items() if k != "type" and (k, v) not in children}
    label = node["type"] + (f" {settings}" if settings else "")
    lines.append(label)
    items = []
    for key, value in children:
        for i, child in enumerate(value if isinstance(value, list) else [value]):
            items.append((f"{key}[{i}]" if isinstance(value, list) else key, child))
    for n, (key, child) in enumerate(items):
        last = n == len(items) - 1
        sub = _tree(child)
        lines.append(("└─ " if last else "├─ ") + f"{key}: " + sub[0])
        lines += [("   " if last else "│  ") + line for line in sub[1:]]
    return lines


def inspect_addon(path: Path) -> str:
    from voicestack.addons.loader import read_config

    root = Path(path).resolve()
    c = read_config(root)
    a = c.audio
    out = [
        f"{c.name} {c.version} ({c.architecture}, {c.language}, format {c.format_version})  {root}",
        f"├─ audio: {a.sample_rate} Hz, hop {a.hop_length}, {a.n_mels} mels, n_fft {a.n_fft}",
        f"├─ symbols ({len(c.symbols)}): " + " ".join(repr(s) for s in c.symbols),
        f"├─ frontend: {c.frontend}",
        "├─ networks",
    ]
    names = list(c.networks)
    for i, name in enumerate(names):
        spec = c.networks[name]
        pre = "│  └─ " if i == len(names) - 1 else "│  ├─ "
        cont = "│     " if i == len(names) - 1 else "│  │  "
        size = (root / spec.file).stat().st_size if (root / spec.file).is_file() else 0
        rf = spec.receptive_field_frames
        out.append(
            f"{pre}{name} [{spec.role}] {spec.file} ({size / 1e6:.2f} MB)"
            + (f", receptive field ±{rf} frames" if rf is not None else "")
        )
        for t in spec.inputs:
            out.append(f"{cont}in  {t.name}: {t.dtype}[{', '.join(map(str, t.shape))}]")
        for t in spec.outputs:
            out.append(f"{cont}out {t.name}: {t.dtype}[{', '.join(map(str, t.shape))}]")
    out.append("├─ stack")
    for i, node in enumerate(c.stack):
        last = i == len(c.stack) - 1
        lines = _tree(node)
        out.append(("│  └─ " if last else "│  ├─ ") + f"[{i}] " + lines[0])
        out += [("│     " if last else "│  │  ") + line for line in lines[1:]]
    out.append(
        f"└─ placement: {c.placement.model_dump(exclude_defaults=True) or 'defaults (cpu, dynamic shapes)'}"
    )
    return "\n".join(out)
