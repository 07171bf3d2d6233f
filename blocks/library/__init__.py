"""The concrete blocks of a stack: encoders, the Upsampler, decoders, vocoders, Griffin-Lim,
effects and diagnostics, and what they share (network chunking, mel analysis, seeded noise)."""
