"""Which Xen crashes are the emulated machine's: read off a real Xen 4.17 crash the lab's host printed."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from lab import xen_crash

# seed-hvm, Dec 6 2026: the HVM guest triple-faulted at an address inside Xen, xl restarted it, and Xen
# took a page fault in svm_vmexit_handler in dom0's context (the host's serial console, as logged).
SVM_EXIT_CRASH = (Path(__file__).parent / "data/xen-4.17-svm-exit-crash.log").read_text()
# What a crash elsewhere in Xen looks like: the same report, faulting in the heap allocator.
HEAP_CRASH = SVM_EXIT_CRASH.replace("] R svm_vmexit_handler+0x25/0x14e0", "] R alloc_heap_pages+0x3e1/0x8a0")
# Xen refusing to build dom0 (say, a dom0_mem larger than the machine): a panic with no call trace.
DOM0_PANIC = (
    "(XEN) *** Building a PV Dom0 ***\n(XEN) \n(XEN) ****************************************\n"
    "(XEN) Panic on CPU 0:\n(XEN) Could not construct domain 0\n(XEN) ****************************************\n"
)


def test_the_crash_in_svms_exit_handler_is_the_emulations() -> None:
    assert xen_crash.faulting_frame(SVM_EXIT_CRASH) == "svm_vmexit_handler+0x25/0x14e0"
    assert xen_crash.emulated_virtualisation_crash(SVM_EXIT_CRASH) == "svm_vmexit_handler+0x25/0x14e0"


def test_a_crash_elsewhere_in_xen_is_not_called_the_emulations() -> None:
    assert xen_crash.faulting_frame(HEAP_CRASH) == "alloc_heap_pages+0x3e1/0x8a0"
    assert xen_crash.emulated_virtualisation_crash(HEAP_CRASH) is None


def test_a_panic_without_a_call_trace_is_not_called_the_emulations() -> None:
    assert xen_crash.faulting_frame(DOM0_PANIC) is None
    assert xen_crash.emulated_virtualisation_crash(DOM0_PANIC) is None


def test_the_last_crash_counts() -> None:
    assert xen_crash.emulated_virtualisation_crash(SVM_EXIT_CRASH + HEAP_CRASH) is None
    assert xen_crash.emulated_virtualisation_crash(HEAP_CRASH + SVM_EXIT_CRASH) == "svm_vmexit_handler+0x25/0x14e0"


def test_an_earlier_report_far_back_is_not_this_panics_trace() -> None:
    # an SVM call trace (a WARN's, say), then the host runs on for a while, then dom0 cannot be built
    dom0_lines = "".join(f"[  {n}.000000] xenbr0: port 2(vif1.0) entered forwarding state\n" for n in range(100))
    assert xen_crash.emulated_virtualisation_crash(SVM_EXIT_CRASH + dom0_lines + DOM0_PANIC) is None


def test_vmx_and_nested_exit_handlers_count_too() -> None:
    for frame in ("vmx_vmexit_handler+0x1a/0x1f00", "nsvm_vcpu_vmexit_inject+0x8/0x90", "nvmx_switch_guest+0x2/0x40"):
        crash = SVM_EXIT_CRASH.replace("svm_vmexit_handler+0x25/0x14e0", frame)
        assert xen_crash.emulated_virtualisation_crash(crash) == frame


@given(st.text())
def test_any_console_text_gives_none_or_an_exit_path_frame(text: str) -> None:
    frame = xen_crash.emulated_virtualisation_crash(text)
    assert frame is None or xen_crash.EXIT_PATH.fullmatch(frame.split("+", 1)[0])
