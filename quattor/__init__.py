"""Quattor under test: the profile model, ncm-ncd with ncm-xen and ncm-grub, and AII.

Standard library only: this package installs into dom0 and into the install server's container.
"""
