"""Runtimes: where a voice's blocks run. `local` runs a whole stack in one process (CLI, tests,
the in-process baseline); the Ray runtime spreads the same blocks over actors."""
