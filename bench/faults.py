"""Faults, again and again: every kind of deployment of the bundled voices killed (SIGKILL) in
the middle of streams, and what each client saw.

The service is `make serve`'s: joe, espeak-duration and espeak-attention under
deploy/placements/local.yaml (each voice's blocks fused into its composer), on a local Ray;
`--unfused` drops every `fuse` entry, so that each block has a deployment of its own to kill
(and with `--group-griffin-lim` Griffin-Lim is one deployment shared by both espeak voices).
For each deployment (each voice's composer and blocks, a grouped vocoder, the ingress),
`--rounds` times: four streams start (the voice's long text as msgpack, wav and mp3,
and another voice's as msgpack), the deployment's replica is killed once the first has
`--kill-after` bytes, and every stream is read to its end. Each stream is then:

- complete: ended cleanly and whole (msgpack: its audio equal to the same request made
  without a fault, within tests/same_audio.py's tolerance for its vocoder: 2 LSB, or 40 dB SNR
  for Griffin-Lim; wav and mp3: as many bytes as without a fault);
- an error message (msgpack `error`), aborted (the response cut before its end), or refused
  (an error status before any audio): it failed, and said so;
- clean but short: ended like a whole file with audio missing. Never allowed.

Recovery is the time from the kill until a new one-sentence request of the voice, sent again and
again from that moment beside the broken streams, gets its whole audio.
tests/test_stream_failures.py runs the fast part of this.

    .venv/bin/python bench/faults.py [--rounds 3] [--only Composer,Ingress] [--unfused]
        [--group-griffin-lim] [--json out/faults.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOICES = ("joe", "espeak-duration", "espeak-attention")
TEXT = " ".join(
    f"This is sentence number {n}, and the stream goes on while a replica is killed."
    for n in range(1, 13)
)
#: The voices whose vocoder is iterative (Griffin-Lim): compared by SNR (tests/same_audio.py).
ITERATIVE = {"espeak-duration"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kill-after", type=int, default=20_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated deployment names to kill (default: every one), e.g. Composer,Ingress",
    )
    parser.add_argument("--unfused", action="store_true", help="a deployment per block")
    parser.add_argument(
        "--group-griffin-lim",
        action="store_true",
        help="one Griffin-Lim deployment for both espeak voices",
    )
    args = parser.parse_args()

    import numpy as np
    import yaml
    from ray import serve
    from voicestack.addons.search_path import find_voice

    from tests.faults import COMPLETE, SHORT, in_background, stream, wait_until_served
    from tests.ray_service import running_service
    from tests.same_audio import same_audio, snr_db

    root = Path(__file__).resolve().parents[1]
    placement = yaml.safe_load((root / "deploy/placements/local.yaml").read_text())
    from bench.serve_bench.launch import with_shared_griffin_lim, without_fusing

    if args.unfused:
        placement = without_fusing(placement)
    if args.group_griffin_lim:
        placement = with_shared_griffin_lim(placement)
    paths = [str(find_voice(v).path) for v in VOICES]
    rows = []
    with running_service(paths, placement) as service:
        client, url = service["client"], f"http://127.0.0.1:{service['port']}"

        def body(voice: str, fmt: str) -> dict:
            return {"voice": voice, "text": TEXT, "format": fmt, "seed": 7}

        whole = {}
        for voice in VOICES:
            seen = {fmt: stream(client, body(voice, fmt)) for fmt in ("msgpack", "wav", "mp3")}
            assert all(s.outcome(len(s.body)) == COMPLETE for s in seen.values()), voice
            whole[voice] = {"audio": seen["msgpack"].audio()} | {
                fmt: len(seen[fmt].body) for fmt in ("wav", "mp3")
            }

        status = serve.status().applications
        targets = []  # (application, deployment, the voice whose streams it serves)
        for voice in VOICES:
            app = f"voice-{voice}"
            targets += [(app, d, voice) for d in sorted(status[app].deployments)]
        for app in sorted(a for a in status if a.startswith("group-")):
            for d in sorted(status[app].deployments):
                targets.append((app, d, "espeak-duration"))
        targets.append(("voicestack", "Ingress", "espeak-duration"))
        if args.only:
            targets = [t for t in targets if t[1] in args.only.split(",")]

        for app, deployment, voice in targets:
            other = "joe" if voice != "joe" else "espeak-duration"
            # A kill of what the other voice's stream also goes through: it may fail honestly.
            shared = app == "voicestack" or (app.startswith("group-") and other != "joe")
            for round_ in range(args.rounds):
                wait_until_served(client, voice)
                wait_until_served(client, other)
                background = [
                    (voice, "wav", *in_background(url, body(voice, "wav"))),
                    (voice, "mp3", *in_background(url, body(voice, "mp3"))),
                    (other, "msgpack", *in_background(url, body(other, "msgpack"))),
                ]
                killed: list = []
                recovery = Recovery(url, voice)
                seen = stream(
                    client,
                    body(voice, "msgpack"),
                    kill_after=args.kill_after,
                    killing=(app, deployment),
                    killed=killed,
                    on_kill=recovery.start,
                )
                for *_, thread, _out in background:
                    thread.join(600)
                streams = [(voice, "msgpack", seen)] + [
                    (v, fmt, out[0]) for v, fmt, _t, out in background
                ]
                outcomes = []
                for v, fmt, s in streams:
                    expected = None if fmt == "msgpack" else whole[v][fmt]
                    outcome = s.outcome(expected)
                    equal, max_lsb, snr = None, None, None
                    if fmt == "msgpack" and outcome == COMPLETE:
                        got, ref = s.audio().astype(int), whole[v]["audio"].astype(int)
                        if got.shape == ref.shape:
                            max_lsb = int(np.abs(got - ref).max())
                            snr = round(snr_db(got, ref), 1)
                        equal = same_audio(got, ref, iterative_vocoder=v in ITERATIVE)
                    outcomes.append(
                        {
                            "voice": v,
                            "format": fmt,
                            "outcome": outcome,
                            "equal": equal,
                            "max_lsb": max_lsb,
                            "snr_db": snr,
                        }
                    )
                row = {
                    "application": app,
                    "deployment": deployment,
                    "round": round_,
                    "killed": bool(killed),
                    "shared_with_other": shared,
                    "recovery_s": round(recovery.seconds(), 2),
                    "streams": outcomes,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    print()
    print(table(rows, SHORT))


class Recovery:
    """New one-sentence requests of `voice`, sent again and again from the moment of the kill
    (beside the streams it broke) until one gets its whole audio."""

    def __init__(self, url: str, voice: str) -> None:
        self.url, self.voice = url, voice
        self.thread: threading.Thread | None = None
        self.recovered: list[float] = []

    def start(self) -> None:
        killed_at = time.monotonic()
        self.thread = threading.Thread(target=self._probe, args=(killed_at,), daemon=True)
        self.thread.start()

    def _probe(self, killed_at: float) -> None:
        import httpx

        from tests.faults import wait_until_served

        with httpx.Client(base_url=self.url, timeout=120) as client:
            self.recovered.append(
                wait_until_served(client, self.voice, timeout_s=300, since=killed_at)
            )

    def seconds(self) -> float:
        """Seconds from the kill to the first whole answer (NaN: never killed)."""
        if self.thread is None:
            return float("nan")
        self.thread.join(600)
        return self.recovered[0]


def table(rows: list[dict], short: str) -> str:
    """The markdown table of docs/reliability.md: per deployment, its streams' outcomes."""
    out = [
        "| deployment killed | kills | its voice's streams: complete (audio equal) / failed "
        "and said so / clean but short | other voice's streams complete | recovery median / "
        "max (s) |",
        "|---|---|---|---|---|",
    ]
    keys: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        keys.setdefault((row["application"], row["deployment"]), []).append(row)
    for (app, deployment), group in keys.items():
        own = [s for r in group for s in r["streams"][:3]]
        others = [r["streams"][3] for r in group]
        complete = [s for s in own if s["outcome"] == "complete"]
        equal = sum(1 for s in complete if s["equal"] in (True, None))
        failed = sum(1 for s in own if s["outcome"] not in ("complete", short))
        shorts = sum(1 for s in own if s["outcome"] == short)
        recoveries = [r["recovery_s"] for r in group]
        others_ok = sum(1 for s in others if s["outcome"] == "complete")
        out.append(
            f"| {app} {deployment} | {sum(r['killed'] for r in group)} | "
            f"{len(complete)} ({equal}) / {failed} / {shorts} | {others_ok} of {len(others)} | "
            f"{statistics.median(recoveries):.1f} / {max(recoveries):.1f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
