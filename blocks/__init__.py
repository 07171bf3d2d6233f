"""Blocks: what a voice's stack is made of, in three parts, and the registry that builds them.

- `core/`: the two abstractions (SequenceBlock, StreamableBlock), their composites, and their
  plumbing (chunks, request keys, the build environment's protocol, the registry's machinery).
- `text/`: the text front end (Frontend, PiperFrontend, normalisation, phonemes, words).
- `library/`: the concrete blocks (encoders, Upsampler, decoders, vocoders, effects, ...).
- `errors.py`: the problems and errors every layer of voicestack raises and reports.

core imports neither text nor library. This module, above all three, assembles the one
process-wide registry that knows every built-in block by name (`REGISTRY`); its table names
modules, imported only when a stack first asks for one of their blocks.

Nothing here imports torch at package import time, so the HTTP ingress can import the registry
and the abstractions' names without paying for torch.
"""

from collections.abc import Mapping

from voicestack.blocks.core.registry import COMPOSITE_BLOCKS, BlockRegistry

#: Built-in blocks: type name -> "module:Class" inside this package. The only modules the
#: registry imports by name are listed here.
BUILTIN_BLOCKS: Mapping[str, str] = {
    **COMPOSITE_BLOCKS,
    "Frontend": "voicestack.blocks.text.frontend:Frontend",
    "PiperFrontend": "voicestack.blocks.text.piper_frontend:PiperFrontend",
    "Encoder": "voicestack.blocks.library.encoders:Encoder",
    "Encoders": "voicestack.blocks.library.encoders:Encoders",
    "CustomizedEncoders": "voicestack.blocks.library.encoders:CustomizedEncoders",
    "Upsampler": "voicestack.blocks.library.upsampler:Upsampler",
    "Decoder": "voicestack.blocks.library.decoder:Decoder",
    "AttentionDecoder": "voicestack.blocks.library.attention_decoder:AttentionDecoder",
    "Vocoder": "voicestack.blocks.library.vocoder:Vocoder",
    "GriffinLim": "voicestack.blocks.library.griffin_lim:GriffinLim",
    "Gain": "voicestack.blocks.library.gain:Gain",
    "Diagnostics": "voicestack.blocks.library.diagnostics:Diagnostics",
}

#: The process-wide registry. Use `register` to add a block in code.
REGISTRY = BlockRegistry(BUILTIN_BLOCKS)
register = REGISTRY.register

__all__ = ["BUILTIN_BLOCKS", "REGISTRY", "register"]
