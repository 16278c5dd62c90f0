"""pypxeboot: a Xen PV bootloader that network-boots a guest on its behalf.

A paravirtualised guest has no NIC firmware, so it cannot PXE-boot.  The toolstack runs pypxeboot in dom0
before the guest exists: it asks DHCP for the guest's MAC, fetches the PXELINUX config, kernel and initrd
by TFTP (or HTTP), and answers the toolstack with the files' dom0 paths and the kernel arguments.

Everything it reads comes from the network and it runs as root, so it trusts nothing: no shell, no file
name chosen by the network, size and time caps, quoted output, and errors instead of guesses.
Standard library only: it installs into dom0 with nothing but Debian's python3.
"""

__version__ = "1.0.0"
