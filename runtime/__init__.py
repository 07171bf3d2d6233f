"""Runtimes: where a voice's blocks run. `local` runs a whole stack in one process (CLI, tests,
the in-process baseline); the service (serve_app/) runs the same compiled plan with each leaf
block as a Ray Serve deployment."""
