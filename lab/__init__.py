"""The lab harness: network namespaces, QEMU VMs and their consoles, waits, artifacts and cleanup.

It composes the install server (`netboot_stack`) and images (`images`) into a running, isolated lab.
Nothing of the system under test depends on it.
"""
