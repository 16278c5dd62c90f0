"""Reading a Xen crash off a host's console: was it the emulated machine's?

Xen 4.17 runs here under QEMU's TCG, which emulates AMD's SVM (`-cpu qemu64,+npt`).  Now and then that
emulation hands Xen a #VMEXIT it cannot have had (Dec 6 2026, `seed-hvm`: an HVM guest's CPU triple-faulted
at an address inside Xen's own `svm_asm_do_resume`, and when xl restarted it, Xen took a page fault in
`svm_vmexit_handler` in dom0's context, reading through a null pointer, and panicked).  A crash whose faulting
frame is in SVM's or VMX's exit handling is that: the lab's emulated hardware, not anything the system under
test configured.  Any other Xen crash stays the product's to answer for.

Xen prints the crash before its panic banner: `----[ Xen-4.17.7 … ]----`, the registers, the stack, then
`Xen call trace:` whose first frame, marked `R`, is where it faulted.
"""

from __future__ import annotations

import re

CALL_TRACE = "(XEN) Xen call trace:"
_FAULTING_FRAME = re.compile(r"\(XEN\)\s+\[<[0-9a-f]+>\] R (\S+)")
# The crash's call trace ends at most this far before its panic banner (the trace's frames and the page-table
# walk: 742 characters in the crash above); a call trace further back is an earlier report (a WARN, say).
REPORT_SPAN = 4096
# Xen's own SVM and VMX code, and its nested-virtualisation layers over them.
EXIT_PATH = re.compile(r"(?:n?svm|n?vmx)_\w+")


def faulting_frame(console: str) -> str | None:
    """The faulting frame (`svm_vmexit_handler+0x25/0x14e0`) of the crash `console` ends with, or None when no
    call trace with one is in its last REPORT_SPAN characters."""
    start = console.rfind(CALL_TRACE, max(len(console) - REPORT_SPAN, 0))
    if start < 0:
        return None
    m = _FAULTING_FRAME.search(console, start + len(CALL_TRACE), start + len(CALL_TRACE) + 400)
    return m.group(1) if m else None


def emulated_virtualisation_crash(console: str) -> str | None:
    """The faulting frame when the Xen crash `console` ends with (up to its panic banner) is in its hardware
    virtualisation's exit path (under TCG, the emulated SVM's doing), else None."""
    frame = faulting_frame(console)
    return frame if frame and EXIT_PATH.fullmatch(frame.split("+", 1)[0]) else None
