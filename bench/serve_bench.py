"""The serving benchmark, in one command: voicestack on Ray Serve against a naive
ASGI server and an in-process streaming one, same voice, same machine, same clients.

    .venv/bin/python bench/serve_bench.py [--quick] [--levels 1,4,16,64] [--requests N]
        [--texts sentence,400,2000,long-first-sentence]
        [--servers naive,streaming,voicestack,voicestack-unbatched,voicestack-unfused,piper-stream,piper-http]
        [--voice espeak-duration] [--piper-model FILE.onnx] [--seed 0] [--out docs/]

Open loop (bench/serve_bench/README.md): Poisson arrivals at each rate, texts of a length mix,
and each server's capacity (p99 TTFA under 300 ms, no underrun, nothing lost or shed):

    .venv/bin/python bench/serve_bench.py --servers voicestack --arrivals poisson
        [--rates 0.5,1,2,4 | --find-capacity [--max-steps 8]] [--duration-s 60]
        [--mix assistant] [--schedule-seed 0] [--admit-streams 256] [--ttfa-limit-ms 300]

Against Piper itself, same voice: --voice joe --servers piper-stream,piper-http,voicestack
--texts long-first-sentence,sentence,2000 --levels 1,4,16 --out docs/piper-bench

Writes OUT/bench_results.md (the table), .json (summaries and every stream's raw arrivals) and
.png (TTFA against text length, RTFX against concurrency; needs matplotlib). `--quick` (levels 1
and 4, 4 requests each, the 1-sentence and 400-character texts) checks the harness end to end in
a few minutes; the full run is long on 2 cores. The code is in bench/serve_bench/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serve_bench.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
