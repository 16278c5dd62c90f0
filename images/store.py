"""The content-addressed image store: `<cache>/images/<recipe>-<key>/`."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from foundation.errors import ImageError
from foundation.paths import cache_dir
from foundation.process import run

log = logging.getLogger("xenlab.images")

COMPLETE = ".complete.json"


def images_dir() -> Path:
    path = cache_dir() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def key_of(inputs: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]


def build_or_reuse(recipe: str, inputs: Mapping[str, object], build: Callable[[Path], None]) -> Path:
    """Return the directory for `recipe` with these `inputs`, building it with `build(tmpdir)` if needed."""
    key = key_of(inputs)
    final = images_dir() / f"{recipe}-{key}"
    if (final / COMPLETE).exists():
        return final
    with open(images_dir() / f".{recipe}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / COMPLETE).exists():  # another worker built it while we waited
            return final
        tmp = images_dir() / f".{recipe}-{key}.building"
        if tmp.exists():
            remove_tree(tmp)  # a build that crashed half-way
        tmp.mkdir()
        log.info("building image %s (inputs %s)…", recipe, key)
        started = time.monotonic()
        try:
            build(tmp)
        except BaseException as exc:
            remove_tree(tmp)
            if isinstance(exc, ImageError) or not isinstance(exc, Exception):
                raise
            # Whatever stopped it (a package the archive lacks, a tool that failed), what needs the image is
            # blocked, not failed: the report must not count it against the system under test.
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            hint = getattr(exc, "hint", None) or "the cause is below; `python -m images build NAME` retries"
            raise ImageError(f"image {recipe} did not build: {first}", hint=hint) from exc
        (tmp / COMPLETE).write_text(
            json.dumps({"recipe": recipe, "inputs": inputs, "seconds": round(time.monotonic() - started, 1)}, indent=1)
        )
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        log.info("built image %s in %.1f s: %s", recipe, time.monotonic() - started, final)
    return final


def recorded_inputs(image: Path) -> dict[str, object]:
    """The inputs an image was built from, as its build recorded them."""
    try:
        inputs = json.loads((image / COMPLETE).read_text())["inputs"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ImageError(f"{image} is not a complete image (no readable {COMPLETE})") from None
    if not isinstance(inputs, dict):
        raise ImageError(f"{image}/{COMPLETE}: its inputs are not a mapping")
    return inputs


def remove_tree(path: Path) -> None:
    """Remove a build tree, first unmounting anything a crashed chroot step left mounted inside it."""
    import os

    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1].encode().decode("unicode_escape") for line in f]
    for mount in sorted((m for m in mounts if m.startswith(real + "/")), key=len, reverse=True):
        run(["umount", "--lazy", mount], check=False, timeout=60)
    shutil.rmtree(path, ignore_errors=True)


def source_digest(*files: Path) -> str:
    """The hash of a recipe's own source files: changing a recipe rebuilds its image."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:20]


def collect_garbage(keep: set[Path]) -> list[Path]:
    """Remove every image directory (and stale lock or half-built tree) of the store not in `keep`."""
    removed = []
    keep = {p.resolve() for p in keep}
    for entry in sorted(images_dir().iterdir()):
        if entry.resolve() in keep:
            continue
        if entry.name.endswith(".lock"):
            stem = entry.name[1:].removesuffix(".lock")
            if (images_dir() / stem).resolve() in keep:
                continue
            entry.unlink(missing_ok=True)
        elif entry.is_dir():
            remove_tree(entry)
        removed.append(entry)
    return removed
