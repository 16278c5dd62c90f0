"""The installer's boot arguments AII writes into a node's pxelinux and iPXE entries, by dialect.

`/system/aii/nbp/options/dialect`:
  el5       the 2007 AII's and EL5 anaconda's: `ks=URL ksdevice=NIC`, `updates=URL`, `method=URL` (the default)
  anaconda  today's Anaconda (rhinstaller/anaconda docs/boot-options.rst): `inst.ks=URL`, the NIC by dracut's
            `ip=NIC:dhcp` and `bootdev=NIC` (ksdevice=<DEV> is replaced by bootdev), `inst.updates=URL`,
            `inst.stage2=URL`
`/system/aii/nbp/options/updates` and `/stage2` give the updates image and the installer runtime image or tree.
"""

from __future__ import annotations

DIALECTS = ("el5", "anaconda")


def install_arguments(
    dialect: str, *, ks: str, nic: str, updates: str | None = None, stage2: str | None = None
) -> tuple[str, ...]:
    """The kernel arguments of a kickstart install over `nic` (the console and the profile's own append
    come after them)."""
    if dialect == "anaconda":
        args = [f"inst.ks={ks}", f"ip={nic}:dhcp", f"bootdev={nic}"]
        args += [f"inst.updates={updates}"] if updates else []
        args += [f"inst.stage2={stage2}"] if stage2 else []
    elif dialect == "el5":
        args = [f"ks={ks}", f"ksdevice={nic}"]
        args += [f"updates={updates}"] if updates else []
        args += [f"method={stage2}"] if stage2 else []
    else:
        raise ValueError(f"dialect {dialect!r}: one of {', '.join(DIALECTS)}")
    return tuple(args)
