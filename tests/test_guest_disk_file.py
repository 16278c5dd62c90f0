"""Reading a file of a guest's root file system from its raw disk image, as dom0 does for a suite's verdict.

Disk images made here by the tools an installer uses (sfdisk for the table, mke2fs populating the file
system at its offset), not by the reader's own code; the partition parser against sfdisk's own reading of
the same table, and against bytes that are no table at all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab import guest_disk_file

MIB = 2**20


def make_disk(path: Path, label: str, parts: list[tuple[str, int]], root_files: dict[str, str]) -> None:
    """A 64 MiB raw disk: a `label` (dos or gpt) table of `parts` (type, MiB) with the second one an ext4
    file system labelled root holding `root_files`, the first one labelled boot."""
    with path.open("wb") as f:
        f.truncate(64 * MIB)
    lines = [f"label: {label}"] + [f"size={mib}MiB, type={kind}" for kind, mib in parts]
    subprocess.run(["sfdisk", "-q", str(path)], input="\n".join(lines) + "\n", text=True, check=True)
    table = json.loads(subprocess.run(["sfdisk", "-J", str(path)], capture_output=True, text=True).stdout)
    found = table["partitiontable"]["partitions"]
    tree = path.parent / "tree"
    for file, text in root_files.items():
        (tree / file).parent.mkdir(parents=True, exist_ok=True)
        (tree / file).write_text(text)
    for index, (name, content) in enumerate((("boot", None), ("root", tree))):
        offset, size = found[index]["start"] * 512, found[index]["size"] * 512
        argv = ["mke2fs", "-q", "-t", "ext4", "-L", name, "-E", f"offset={offset}", "-F"]
        if content is not None:
            argv += ["-d", str(content)]
        subprocess.run([*argv, str(path), f"{size // 1024}k"], check=True, capture_output=True)


needs_tools = pytest.mark.skipif(
    not all(map(shutil.which, ("sfdisk", "mke2fs", "debugfs"))), reason="needs sfdisk, mke2fs and debugfs"
)


@needs_tools
@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_partitions_are_where_sfdisk_says(label: str, tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    linux = "83" if label == "dos" else "L"
    make_disk(disk, label, [(linux, 8), (linux, 24), (linux, 16)], {"root/RESULT": "SUCCESS\n"})
    table = json.loads(subprocess.run(["sfdisk", "-J", str(disk)], capture_output=True, text=True).stdout)
    expected = [(p["start"] * 512, p["size"] * 512) for p in table["partitiontable"]["partitions"]]
    assert guest_disk_file.partitions(disk.read_bytes()[: guest_disk_file.HEAD_BYTES]) == expected


@needs_tools
def test_the_file_is_read_from_the_partition_labelled_root_and_a_missing_one_is_none(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    make_disk(disk, "dos", [("83", 8), ("83", 24)], {"root/RESULT": "SUCCESS\n"})
    before = disk.read_bytes()
    assert guest_disk_file.read(str(disk), "/root/RESULT") == ("SUCCESS\n", None)
    assert guest_disk_file.read(str(disk), "/root/nothing") == (None, None)
    assert disk.read_bytes() == before  # read, never written (no mount, no journal replay)


@needs_tools
def test_a_disk_without_a_root_partition_or_a_table_says_so(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(MIB))
    assert guest_disk_file.read(str(blank), "/root/RESULT") == (None, f"{blank}: no partition table")


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=4096))
def test_any_bytes_give_a_list_of_partitions_or_none_never_a_crash(head: bytes) -> None:
    if len(head) >= 512 and head[0] % 2:
        head = head[:510] + b"\x55\xaa" + head[512:]  # half the examples carry the MBR signature
    found = guest_disk_file.partitions(head)
    assert all(offset >= 0 and size > 0 for offset, size in found)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=92, max_size=92), st.binary(min_size=0, max_size=8192))
def test_a_hostile_gpt_header_gives_bounded_work_and_sane_partitions(header: bytes, entries: bytes) -> None:
    mbr = bytearray(512)
    mbr[446 + 4] = guest_disk_file.PROTECTIVE
    mbr[510:512] = b"\x55\xaa"
    head = bytes(mbr) + b"EFI PART" + header[8:] + bytes(512 - 92) + entries
    found = guest_disk_file.partitions(head)
    assert len(found) <= guest_disk_file.GPT_ENTRIES_MAX
    assert all(offset >= 0 and size > 0 for offset, size in found)
