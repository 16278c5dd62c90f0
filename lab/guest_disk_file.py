"""One file of a Xen guest's root file system, read from its raw disk image in dom0: `python3 - IMAGE PATH`.

Sent to dom0's python3 on its standard input, so it uses the standard library only.  The partition table
is read here (MBR primaries, or GPT behind a protective MBR), the root file system is the partition labelled
`root` (`blkid -p` at its offset), and the file is copied out of it by debugfs at that offset
(`IMAGE?offset=N`).  Nothing is mounted and no loop device is taken: dom0's own LVM never sees a physical
volume a case put on the disk, and Xen's block hotplug script, which takes loop devices for the other
guests' file disks meanwhile, never finds one taken under it.  Prints one JSON object: {"text": "..."} or
{"text": null, "error": "why"}.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile

SECTOR = 512
ROOT_LABEL = "root"
HEAD_BYTES = 1 << 20  # the MBR, and a GPT's header and entries
EXTENDED = (0x05, 0x0F, 0x85)
PROTECTIVE = 0xEE
GPT_ENTRY_MIN = 128  # bytes: the UEFI spec's smallest entry
GPT_ENTRIES_MAX = 1024  # more than any table holds: a header saying 2**32 is not believed


def partitions(head: bytes) -> list[tuple[int, int]]:
    """(offset, size) in bytes of each partition the disk's first bytes describe."""
    if len(head) < SECTOR or head[510:512] != b"\x55\xaa":
        return []
    entries = [struct.unpack_from("<4xB3xII", head, 446 + 16 * i) for i in range(4)]  # type, first LBA, sectors
    if any(kind == PROTECTIVE for kind, _, _ in entries):
        return _gpt(head)
    used = [(first, count) for kind, first, count in entries if kind and kind not in EXTENDED and count]
    return [(first * SECTOR, count * SECTOR) for first, count in used]


def _gpt(head: bytes) -> list[tuple[int, int]]:
    header = head[SECTOR : 2 * SECTOR]
    if header[:8] != b"EFI PART":
        return []
    entries_lba, count, size = struct.unpack_from("<QII", header, 72)
    if size < GPT_ENTRY_MIN:
        return []
    found = []
    for i in range(min(count, GPT_ENTRIES_MAX)):
        start = entries_lba * SECTOR + i * size
        entry = head[start : start + size]
        if len(entry) < size:
            break
        if entry[:16] == bytes(16):  # an unused entry
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        if last < first:
            continue
        found.append((first * SECTOR, (last - first + 1) * SECTOR))
    return found


def label(image: str, offset: int, size: int) -> str:
    argv = ["blkid", "-p", "-O", str(offset), "-S", str(size), "-s", "LABEL", "-o", "value", image]
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


def read(image: str, path: str) -> tuple[str | None, str | None]:
    """The file's text (None if the root file system has no such file), and why not when it could not look."""
    with open(image, "rb") as disk:
        parts = partitions(disk.read(HEAD_BYTES))
    if not parts:
        return None, f"{image}: no partition table"
    for offset, size in parts:
        if label(image, offset, size) != ROOT_LABEL:
            continue
        with tempfile.TemporaryDirectory(prefix="xenlab-guest-file-") as tmp:
            out = f"{tmp}/file"
            argv = ["debugfs", "-R", f"dump {path} {out}", f"{image}?offset={offset}"]
            shown = subprocess.run(argv, capture_output=True, text=True, check=False)
            try:
                with open(out, errors="replace") as f:
                    return f.read(), None
            except FileNotFoundError:
                said = shown.stderr.strip().splitlines()[-1:] or ["no output"]
                return None, None if "not found" in said[0] else f"{image}: debugfs: {said[0]}"
    return None, f"{image}: no partition labelled {ROOT_LABEL!r} ({len(parts)} partitions)"


def main(argv: list[str]) -> int:
    try:
        text, error = read(argv[1], argv[2])
    except OSError as exc:
        text, error = None, f"{argv[1]}: {exc.strerror}"
    print(json.dumps({"text": text, "error": error}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
