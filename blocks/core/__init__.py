"""The abstractions (SequenceBlock, StreamableBlock, ChunkwiseBlock), their composites
(StreamablePipeline, SequenceBlockContainer, StreamableStack), and their plumbing: chunks, a
request's keys, the build environment's protocol, and the registry's machinery.

Nothing here imports the text front end (blocks/text/), the concrete blocks (blocks/library/),
or a layer above blocks (addons, placement, runtime, ...).
"""
