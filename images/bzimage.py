"""A Xen PV guest's kernel made from a bzImage: its ELF vmlinux, gzip-compressed.

Xen's PV domain builder (libxenguest, in dom0) does not run a bzImage's decompressor: it finds the payload
by the boot protocol's header (`payload_offset`, `payload_length`, protocol 2.08 and later), decompresses it
itself and loads the ELF inside.  Debian's payload is XZ; in dom0 under TCG that took 6.5 of the 8 s an
`xl create -p` of the installer spent (Dec 6: 8.0-8.5 s with the bzImage, 3.5 s with the same vmlinux
gzipped, 1.4 s uncompressed, 38 MB initrd each time).  A 2007 site's PV guests booted such a kernel: RHEL 5's
install tree had images/xen/vmlinuz (a gzipped ELF, the kernel-xen package's), beside the pxeboot bzImage
its bare machines booted.  Gzip rather than raw: 11 instead of 66 MB for pypxeboot to fetch and write.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

SETUP_SECTS = 0x1F1
HEADER_MAGIC = 0x202  # "HdrS"
PROTOCOL_VERSION = 0x206
PAYLOAD_FIELDS = 0x248  # payload_offset, payload_length (u32 each), from protocol 2.08
ELF_MAGIC = b"\x7fELF"


class NotABzImage(ValueError):
    """The file is not a bzImage whose payload this module can turn into a PV kernel."""


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes) -> bytes: ...


# The payload's first bytes -> a decompressor of its format (the kernel's own set also has LZO, LZ4 and zstd).
DECOMPRESSORS: tuple[tuple[bytes, str, Callable[[], _Decompressor]], ...] = (
    (b"\xfd7zXZ\x00", "xz", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
    (b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)),  # ignores the size appended
    (b"BZh", "bzip2", bz2.BZ2Decompressor),
    (b"\x5d\x00\x00", "lzma", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)),
)
OTHER_FORMATS = {b"\x89LZO": "lzo", b"\x02\x21\x4c\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd"}


def vmlinux(image: bytes, *, name: str = "bzImage") -> bytes:
    """The ELF kernel inside a bzImage (with what the build appends after it: x86's relocations, which an
    ELF loader ignores).  NotABzImage says why not."""
    if len(image) < PAYLOAD_FIELDS + 8 or image[HEADER_MAGIC : HEADER_MAGIC + 4] != b"HdrS":
        raise NotABzImage(f"{name}: no Linux boot protocol header (HdrS at 0x202): not a bzImage")
    (version,) = struct.unpack_from("<H", image, PROTOCOL_VERSION)
    if version < 0x208:
        raise NotABzImage(f"{name}: boot protocol {version >> 8}.{version & 0xFF} names no payload (2.08 does)")
    setup = (image[SETUP_SECTS] or 4) + 1
    offset, length = struct.unpack_from("<II", image, PAYLOAD_FIELDS)
    start = setup * 512 + offset
    payload = image[start : start + length]
    if not length or len(payload) != length:
        raise NotABzImage(f"{name}: its payload ({length} bytes at {start}) runs past the file's {len(image)}")
    for magic, fmt, decompressor in DECOMPRESSORS:
        if payload.startswith(magic):
            stream = decompressor()
            try:
                elf = stream.decompress(payload)
            except (lzma.LZMAError, zlib.error, OSError, EOFError) as exc:
                raise NotABzImage(f"{name}: its {fmt} payload does not decompress: {exc}") from None
            if not stream.eof:  # a cut stream decompresses without error, to a kernel cut short
                raise NotABzImage(f"{name}: its {fmt} payload ends before its stream does (truncated)")
            if not elf.startswith(ELF_MAGIC):
                raise NotABzImage(f"{name}: its {fmt} payload is not an ELF kernel")
            return elf
    fmt = next((f for m, f in OTHER_FORMATS.items() if payload.startswith(m)), f"unknown ({payload[:6].hex()})")
    raise NotABzImage(
        f"{name}: payload compressed with {fmt}; this builder reads {', '.join(f for _, f, _ in DECOMPRESSORS)}"
    )


def write_pv_kernel(bzimage: Path, out: Path) -> None:
    """Write `bzimage`'s vmlinux, gzipped, to `out` (what Xen's PV builder loads with the least work)."""
    elf = vmlinux(bzimage.read_bytes(), name=str(bzimage))
    out.write_bytes(gzip.compress(elf, compresslevel=9, mtime=0))
