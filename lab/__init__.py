"""The lab harness: QEMU VMs and their consoles, waits, phases, artifacts, the topology read from profiles.

It composes the foundation, the install server (`netboot_stack`) and the images (`images`) into a running,
isolated lab.  Nothing of the system under test depends on it.
"""
