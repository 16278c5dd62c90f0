"""A PV guest's kernel from a bzImage: the payload found by the boot protocol's header, decompressed whatever
its format, refused with the reason when it cannot be; and, on Debian's real kernel, an ELF that carries the
Xen notes Xen's PV domain builder looks for."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from images import bzimage

ELF = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 40


def make_bzimage(payload: bytes, *, setup_sects: int = 3, version: int = 0x020F, length: int | None = None) -> bytes:
    """A bzImage as the x86 build lays one out: setup sectors with the header, then the protected-mode part
    (a stand-in decompressor, the payload, the uncompressed size the build appends)."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[bzimage.SETUP_SECTS] = setup_sects
    setup[bzimage.HEADER_MAGIC : bzimage.HEADER_MAGIC + 4] = b"HdrS"
    struct.pack_into("<H", setup, bzimage.PROTOCOL_VERSION, version)
    stub = b"\x90" * 700  # where the real decompressor's code sits
    struct.pack_into("<II", setup, bzimage.PAYLOAD_FIELDS, len(stub), len(payload) if length is None else length)
    return bytes(setup) + stub + payload + struct.pack("<I", len(ELF)) + b"\0" * 300


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "xz": lambda b: lzma.compress(b, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
    "gzip": lambda b: gzip.compress(b, mtime=0),
    "bzip2": bz2.compress,
    "lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
}


@pytest.mark.parametrize("fmt", sorted(COMPRESSORS))
def test_the_payload_is_found_by_the_header_and_decompressed_in_any_format_the_kernel_build_makes(fmt: str) -> None:
    image = make_bzimage(COMPRESSORS[fmt](ELF))
    assert bzimage.vmlinux(image) == ELF


def test_a_zero_setup_sects_means_four_as_the_boot_protocol_says() -> None:
    image = bytearray(make_bzimage(COMPRESSORS["gzip"](ELF), setup_sects=4))
    image[bzimage.SETUP_SECTS] = 0
    assert bzimage.vmlinux(bytes(image)) == ELF


@pytest.mark.parametrize(
    ("image", "says"),
    [
        (b"MZ" + b"\0" * 4000, "no Linux boot protocol header"),
        (make_bzimage(COMPRESSORS["xz"](ELF), version=0x0206), "boot protocol 2.6 names no payload"),
        (make_bzimage(COMPRESSORS["xz"](ELF), length=10**7), "runs past the file"),
        (make_bzimage(b"\x28\xb5\x2f\xfd" + b"\0" * 64), "payload compressed with zstd; this builder reads xz, gzip"),
        (make_bzimage(b"\x02\x21\x4c\x18" + b"\0" * 64), "compressed with lz4"),
        (make_bzimage(b"ABCDEFGH"), "compressed with unknown (414243444546)"),
        (make_bzimage(COMPRESSORS["gzip"](b"#!/bin/sh\n" * 50)), "its gzip payload is not an ELF kernel"),
        (make_bzimage(COMPRESSORS["xz"](ELF)[:40] + b"\0" * 80), "its xz payload does not decompress"),
        *(
            (make_bzimage(COMPRESSORS[fmt](ELF)[:-60]), f"its {fmt} payload ends before its stream does")
            for fmt in sorted(COMPRESSORS)
        ),
    ],
)
def test_what_is_not_a_usable_bzimage_is_refused_with_the_reason(image: bytes, says: str) -> None:
    with pytest.raises(bzimage.NotABzImage, match="^vmlinuz: ") as excinfo:
        bzimage.vmlinux(image, name="vmlinuz")
    assert says in str(excinfo.value), str(excinfo.value)


MAGICS = [b"", *(m for m, _, _ in bzimage.DECOMPRESSORS), *bzimage.OTHER_FORMATS]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.sampled_from(MAGICS), st.binary(max_size=3000), st.integers(0, 0x1000), st.integers(0, 5000))
def test_hostile_bytes_give_an_elf_or_the_modules_own_error(
    magic: bytes, tail: bytes, version: int, length: int
) -> None:
    image = make_bzimage(magic + tail, version=version, length=length)
    with contextlib.suppress(bzimage.NotABzImage):
        assert bzimage.vmlinux(image).startswith(bzimage.ELF_MAGIC)


def xen_notes(elf: bytes) -> dict[int, bytes]:
    """The ELF's notes named "Xen" (type -> descriptor), read from its PT_NOTE segments as libelf does."""
    assert elf[:5] == b"\x7fELF\x02", "an ELF64"
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    notes: dict[int, bytes] = {}
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        at, end = p_offset, p_offset + p_filesz
        while at + 12 <= end:
            namesz, descsz, kind = struct.unpack_from("<III", elf, at)
            name = elf[at + 12 : at + 12 + namesz].rstrip(b"\0")
            desc_at = at + 12 + (namesz + 3) // 4 * 4
            if name == b"Xen":
                notes[kind] = elf[desc_at : desc_at + descsz]
            at = desc_at + (descsz + 3) // 4 * 4
    return notes


@pytest.mark.integration
def test_the_installers_xen_kernel_is_debians_vmlinux_with_the_notes_xens_pv_builder_reads() -> None:
    """Debian's own bzImage (XZ), not one made here: its vmlinux-xen gunzips to an ELF whose Xen notes name
    a PV entry point and the guest OS, which libxenguest's ELF loader requires of a PV kernel."""
    from images.recipes import installer

    built = installer.build()
    elf = gzip.decompress((built / "vmlinuz-xen").read_bytes())  # the pv-kernel image's, linked
    assert elf == bzimage.vmlinux((built / "vmlinuz").read_bytes())
    notes = xen_notes(elf)
    assert notes.get(6, b"").rstrip(b"\0") == b"linux", notes  # XEN_ELFNOTE_GUEST_OS
    assert notes.get(5, b"").rstrip(b"\0") == b"xen-3.0", notes  # XEN_ELFNOTE_XEN_VERSION: a PV kernel's ABI
    assert len(notes.get(1, b"")) == 8, "XEN_ELFNOTE_ENTRY: where a PV guest starts"
    assert len(elf) > 8 * Path(built / "vmlinuz").stat().st_size // 2, "the whole kernel, not a fragment"
