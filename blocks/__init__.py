"""Blocks: the two abstractions (SequenceBlock, StreamableBlock), their composites, the registry
that builds a tree of them from an addon's `stack`, and the concrete blocks.

Nothing here imports torch at package import time, so the HTTP ingress can import the registry
and the abstractions' names without paying for torch.
"""
