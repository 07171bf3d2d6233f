"""`voicestack`: list voices, synthesize to an audio file, inspect and validate addons.

voicestack voices [--json]
voicestack synth --voice NAME --text "Hello there." -o hello.wav   (or .mp3 .opus .ogg .aac .flac)
voicestack synth --voice NAME -i book.txt -o book.mp3 [--url http://127.0.0.1:8000] [--words w.json]
voicestack serve deploy/local.yaml [--metrics-port 9100]
voicestack demo
voicestack wyoming [--uri tcp://127.0.0.1:10200] [--url http://127.0.0.1:8000] [--voice NAME...]
voicestack addon inspect PATH
voicestack addon validate PATH
voicestack addon build-test-voices DEST
voicestack addon import piper MODEL.onnx [CONFIG.json] -o DIR [--name NAME]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from voicestack.blocks.errors import ConfigError


def cmd_voices(args: argparse.Namespace) -> int:
    from voicestack.addons.search_path import find_voices

    voices = find_voices()
    if args.json:
        print(json.dumps([v.as_dict() for v in voices], indent=2))
    else:
        for v in voices:
            print(f"{v.name:24} {v.architecture:10} {v.language:8} {v.path}")
    return 0


#: The audio format a file's extension asks for (`synth -o`); `--format` overrides it. A name
#: without one (`-o /dev/stdout`) is WAV, as every file was before there were other formats.
EXTENSIONS = {
    "": "wav",
    ".wav": "wav",
    ".mp3": "mp3",
    ".opus": "opus",
    ".ogg": "opus",
    ".aac": "aac",
    ".flac": "flac",
}


def _output_format(output: str, given: str | None) -> str:
    if given is not None:
        return given
    fmt = EXTENSIONS.get(Path(output).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the audio format of {output!r} from its extension; use one of "
            f"{', '.join(e for e in EXTENSIONS if e)}, or give --format"
        )
    return fmt


def cmd_synth(args: argparse.Namespace) -> int:
    import os

    from voicestack.cli.synth import Progress, local_events, service_events, write_audio

    fmt = _output_format(args.output, args.format)  # before any work: a bad name fails at once
    text = _text(args)
    speaker = _speaker(args.speaker)
    t0 = time.perf_counter()
    if args.url:
        key = os.environ.get("VOICESTACK_API_KEY")
        rate, events = service_events(
            args.url, args.voice, text, args.seed, speaker, args.speed, key
        )
    else:
        voice = _local_voice(args)
        rate, events = voice.sample_rate, local_events(voice, text, args.seed, speaker, args.speed)
    written = write_audio(Path(args.output), fmt, rate, events, Progress(len(text), rate), t0)
    if args.words:
        Path(args.words).write_text(json.dumps(written.words, indent=1, ensure_ascii=False) + "\n")
    total = time.perf_counter() - t0
    seconds = written.samples / rate
    print(
        f"{args.output}: {seconds:.2f} s of audio in {written.chunks} chunks; first chunk after "
        f"{written.first_s * 1000:.0f} ms, all in {total * 1000:.0f} ms (real-time factor {total / seconds:.3f})",
        file=sys.stderr,
    )
    return 0


def _text(args: argparse.Namespace) -> str:
    """--text, else the --input file ('-': standard input), else standard input."""
    if args.text is not None:
        return args.text
    if args.input and args.input != "-":
        return Path(args.input).read_text(encoding="utf-8")
    return sys.stdin.read()


def _local_voice(args: argparse.Namespace):
    from voicestack.addons.loader import load_addon
    from voicestack.addons.search_path import find_voice
    from voicestack.placement.config import load_placement
    from voicestack.runtime.voice import build_voice

    path = (
        Path(args.voice)
        if Path(args.voice, "addon.json").is_file()
        else find_voice(args.voice).path
    )
    placement = load_placement(args.placement) if args.placement else None
    return build_voice(load_addon(path), placement)


def _speaker(given: str | None) -> str | int | None:
    """A speaker's name, or its id when the argument is a number."""
    return int(given) if given is not None and given.isdigit() else given


def cmd_serve(args: argparse.Namespace) -> int:
    import yaml
    from voicestack.serve_app.launch import serve_forever

    config = yaml.safe_load(Path(args.config).read_text())
    serve_forever(config, args.metrics_port or None)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from voicestack.addons.inspect import inspect_addon

    print(inspect_addon(Path(args.path)))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from voicestack.runtime.validate import validate_addon

    problems = validate_addon(Path(args.path))
    for p in problems:
        print(f"{args.path}: {p}", file=sys.stderr)
    if not problems:
        print(f"{args.path}: ok")
    return 1 if problems else 0


DEMO_TEXT = "Hello there. This is a streaming demo, made one chunk at a time."


def cmd_demo(args: argparse.Namespace) -> int:
    """Stream a short text through every installed voice with the local runtime."""
    from voicestack.addons.loader import load_addon
    from voicestack.addons.search_path import find_voices
    from voicestack.cli.synth import ChunkLog, local_events, write_audio
    from voicestack.runtime.voice import build_voice

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for entry in find_voices():
        voice = build_voice(load_addon(entry.path))
        rate, path = voice.sample_rate, out / f"{entry.name}.wav"
        t0 = time.perf_counter()
        events = local_events(voice, args.text, None, None, 1.0)
        write_audio(path, "wav", rate, events, ChunkLog(entry.name, rate, t0), t0)
        print(f"{entry.name}: wrote {path}")
    return 0


def cmd_build_test_voices(args: argparse.Namespace) -> int:
    from voicestack.addons.recipes.test_voices import build_test_voices

    for folder in build_test_voices(Path(args.dest)):
        print(folder)
    return 0


def cmd_import_piper(args: argparse.Namespace) -> int:
    from voicestack.addons.piper_import import import_piper
    from voicestack.runtime.validate import validate_addon

    out = import_piper(
        Path(args.model),
        args.config and Path(args.config),
        Path(args.output),
        args.name,
        split_generator=not args.whole_decoder,
    )
    problems = validate_addon(out)
    for p in problems:
        print(f"{out}: {p}", file=sys.stderr)
    if not problems:
        print(f"{out}: imported and valid")
    return 1 if problems else 0


def cmd_deploy_build(args: argparse.Namespace) -> int:
    """Write a Serve config (or a KubeRay RayService) for the voices and a placement."""
    from voicestack.addons.search_path import find_voices
    from voicestack.placement.config import load_placement
    from voicestack.serve_app import serve_config

    if args.addons:
        import os

        os.environ["VOICESTACK_ADDONS"] = os.pathsep.join(args.addons)
        names = [v.name for v in find_voices() if any(_inside(v.path, a) for a in args.addons)]
        if not names:
            raise LookupError(f"no addon found in {', '.join(args.addons)}")
    else:
        names = [v.name for v in find_voices()]
    placement = None
    if args.placement:
        load_placement(args.placement)  # validated now, errors naming the key
        import yaml

        placement = yaml.safe_load(Path(args.placement).read_text(encoding="utf-8")) or {}
    config = serve_config.serve_config(
        names,
        placement,
        port=args.port,
        host=args.host,
        check_resources=not args.no_check_resources,
    )
    data = serve_config.rayservice(config) if args.kuberay else config
    text = serve_config.render(data, _command_line(args))
    if args.output == "-":
        print(text, end="")
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(
            f"{args.output}: {len(config['applications'])} Serve applications, {len(names)} voices"
        )
    return 0


def _inside(path: Path, folder: str) -> bool:
    return Path(folder).resolve() in [path, *path.parents]


def _command_line(args: argparse.Namespace) -> str:
    parts = [f" --addons {a}" for a in args.addons or []]
    if args.placement:
        parts.append(f" --placement {args.placement}")
    if args.kuberay:
        parts.append(" --kuberay")
    if args.host != "127.0.0.1":
        parts.append(f" --host {args.host}")
    if args.port != 8000:
        parts.append(f" --port {args.port}")
    if args.no_check_resources:
        parts.append(" --no-check-resources")
    return "".join(parts)


def cmd_wyoming(args: argparse.Namespace) -> int:
    """Serve the voices over the Wyoming protocol (Home Assistant's Wyoming integration): from
    the running service at --url, else with the local runtime in this process."""
    import asyncio
    import contextlib

    from voicestack.serve_app.wyoming_server import open_catalog, serve

    def ready(voices) -> None:
        names = ", ".join(v.name for v in voices) or "none yet"
        backend = args.url or "the local runtime"
        print(f"voicestack wyoming: {args.uri}: {names} (from {backend})", file=sys.stderr)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a normal way to stop a server
        asyncio.run(serve(args.uri, open_catalog(args.url, args.voice), ready))
    return 0


def parser() -> argparse.ArgumentParser:
    from voicestack.serve_app.formats import FORMATS

    p = argparse.ArgumentParser(
        prog="voicestack", description="Serve and run text-to-speech voices."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    voices = sub.add_parser("voices", help="list the installed voices")
    voices.add_argument(
        "--json", action="store_true", help="as JSON: name, architecture, language, path"
    )
    voices.set_defaults(func=cmd_voices)

    synth = sub.add_parser(
        "synth", help="synthesize text to an audio file, written as it is made (local runtime)"
    )
    synth.add_argument("--voice", required=True, help="a voice name, or an addon folder")
    synth.add_argument("--text", help="the text (default: --input, else standard input)")
    synth.add_argument("-i", "--input", help="a UTF-8 text file to read ('-': standard input)")
    synth.add_argument(
        "--url",
        help="send the text to a running service (http://127.0.0.1:8000) instead of loading "
        "the voice here; its key, if it wants one, from VOICESTACK_API_KEY",
    )
    synth.add_argument("--words", help="also write each word's times to this JSON file")
    synth.add_argument(
        "-o",
        "--output",
        required=True,
        help="audio file to write; its extension picks the format "
        f"({' '.join(e for e in EXTENSIONS if e)}; none: WAV)",
    )
    synth.add_argument(
        "--format",
        choices=FORMATS,
        help="the format to write, whatever the file's extension",
    )
    synth.add_argument("--placement", help="placement file (YAML/JSON) laid over the addon's")
    synth.add_argument(
        "--seed", type=int, help="fix a generative voice's noise (same seed, same audio)"
    )
    synth.add_argument("--speaker", help="a multi-speaker voice's speaker, by name or id")
    synth.add_argument(
        "--speed", type=float, default=1.0, help="> 1 speaks faster (0.25 to 4; duration voices)"
    )
    synth.set_defaults(func=cmd_synth)

    serve = sub.add_parser(
        "serve", help="serve a Serve config (deploy/local.yaml) on an embedded local Ray"
    )
    serve.add_argument("config", help="a Serve config file, as `voicestack deploy build` writes")
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=9100,
        help="where Ray exports the Prometheus metrics (0: a port Ray picks)",
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="stream a text through every voice (local runtime)")
    demo.add_argument("--text", default=DEMO_TEXT)
    demo.add_argument("--out", default="out", help="folder for the WAV files")
    demo.set_defaults(func=cmd_demo)

    wyoming = sub.add_parser(
        "wyoming", help="serve the voices to Home Assistant over the Wyoming protocol"
    )
    wyoming.add_argument(
        "--uri", default="tcp://127.0.0.1:10200", help="where to listen: tcp://HOST:PORT"
    )
    wyoming.add_argument(
        "--url", help="a running voicestack service (default: the local runtime, in process)"
    )
    wyoming.add_argument(
        "--voice",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="offer only these voices (the first is the default; default: all)",
    )
    wyoming.set_defaults(func=cmd_wyoming)

    addon = sub.add_parser("addon", help="work with addon folders").add_subparsers(
        dest="addon_command", required=True
    )
    inspect = addon.add_parser(
        "inspect", help="print networks, shapes, symbols and stack as a tree"
    )
    inspect.add_argument("path")
    inspect.set_defaults(func=cmd_inspect)
    validate = addon.add_parser(
        "validate", help="check everything; print every problem with its key"
    )
    validate.add_argument("path")
    validate.set_defaults(func=cmd_validate)
    deploy = sub.add_parser("deploy", help="write deployment configs").add_subparsers(
        dest="deploy_command", required=True
    )
    dbuild = deploy.add_parser(
        "build", help="write a Ray Serve config (or KubeRay RayService) from addons and a placement"
    )
    dbuild.add_argument("--addons", action="append", help="folder of addons (default: all voices)")
    dbuild.add_argument("--placement", help="placement file (YAML/JSON) laid over each addon's")
    dbuild.add_argument("--kuberay", action="store_true", help="write a KubeRay RayService")
    dbuild.add_argument("--host", default="127.0.0.1", help="HTTP host (0.0.0.0 on a cluster)")
    dbuild.add_argument("--port", type=int, default=8000)
    dbuild.add_argument(
        "--no-check-resources",
        action="store_true",
        help="do not refuse placements the running cluster cannot host (autoscaling clusters)",
    )
    dbuild.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    dbuild.set_defaults(func=cmd_deploy_build)

    imports = addon.add_parser("import", help="make an addon from another engine's voice")
    importers = imports.add_subparsers(dest="import_format", required=True)
    piper = importers.add_parser(
        "piper", help="a Piper voice (VITS in ONNX): Encoders -> Upsampler -> Decoder, streamed"
    )
    piper.add_argument("model", help="the voice's .onnx file")
    piper.add_argument("config", nargs="?", help="its JSON (default: MODEL.json)")
    piper.add_argument("-o", "--output", required=True, help="addon folder to write")
    piper.add_argument("--name", help="the voice's name (default: the dataset's name)")
    piper.add_argument(
        "--whole-decoder",
        action="store_true",
        help="flow and HiFi-GAN as one Decoder (default: the HiFi-GAN as a Vocoder after it)",
    )
    piper.set_defaults(func=cmd_import_piper)

    build = addon.add_parser("build-test-voices", help="build the two test voices into DEST")
    build.add_argument("dest")
    build.set_defaults(func=cmd_build_test_voices)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ConfigError, LookupError, ValueError, OSError) as e:
        print(f"voicestack: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
