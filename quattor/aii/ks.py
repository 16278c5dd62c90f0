"""The kickstart AII writes for a node, from its profile.

It uses only the commands the lab's installer carries out (and Anaconda's parser, pykickstart, accepts):
text, network, rootpw --iscrypted, sshkey, timezone, zerombr, clearpart, part (with an LVM physical
volume when the profile asks for a volume group), volgroup, liveimg, bootloader, %post and reboot.  The
%post writes the node's profile URL for ncm-ncd, runs the components named in `post_components` (the Xen
host's ncm-grub), and finally calls the install acknowledgement.
"""

from __future__ import annotations

import shlex

from quattor.aii.node import AiiNode
from quattor.profile import ProfileError

ACK_PATH = "/cgi-bin/aii-installack.cgi"


def _opt(node: AiiNode, key: str, default: object = None) -> object:
    return node.osinstall.get(key, default)


def _str(node: AiiNode, key: str, default: str | None = None) -> str:
    value = _opt(node, key, default)
    if not isinstance(value, str) or any(c in value for c in "\n\r\0"):
        raise ProfileError(f"/system/aii/osinstall/options/{key}", f"expected a one-line string, got {value!r}")
    return value


def kernel_append(node: AiiNode) -> str:
    """The installed system's kernel arguments, inside the kickstart's `--append="…"`: a token that could end
    those quotes (or hide a line break) is refused, never escaped."""
    for token in node.append:
        if any(c in token for c in "\"\\'$`") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
            raise ProfileError("/system/aii/nbp/options/append", f"kernel argument {token!r} has a quote or a control")
    return " ".join(node.append)


def kickstart(node: AiiNode, *, payload_image: str, ack_base: str) -> str:
    rootpw = _str(node, "rootpw")
    if not rootpw.startswith("$"):
        raise ProfileError("/system/aii/osinstall/options/rootpw", "expected a crypted password ($6$…), never plain")
    disk = _str(node, "disk", "")
    lines = [
        f"# Kickstart for {node.fqdn}, written by AII (xenlab) from {node.profile.source}",
        "text",
        f"network --device={node.nic} --bootproto=static --ip={node.ip} --netmask={node.netmask} "
        f"--hostname={node.fqdn}" + (f" --nameserver={','.join(node.nameservers)}" if node.nameservers else ""),
        f"rootpw --iscrypted {rootpw}",
    ]
    sshkey = _opt(node, "sshkey")
    if sshkey:
        lines.append(f"sshkey --username=root {shlex.quote(str(sshkey))}")
    lines += [
        f"timezone {_str(node, 'timezone', 'UTC')} --utc",
        "zerombr",
        "clearpart --all --initlabel" + (f" --drives={disk}" if disk else ""),
    ]
    on_disk = f" --ondisk={disk}" if disk else ""
    lvm = _opt(node, "lvm")
    root_size = int(_opt(node, "root_size_mib", 3072))  # type: ignore[call-overload]
    lines.append(f"part / --fstype=ext4 --label=root --size={root_size}{on_disk}")
    if isinstance(lvm, dict):
        vg, size = lvm.get("volume_group"), lvm.get("size_mib")
        if not isinstance(vg, str) or not isinstance(size, int):
            raise ProfileError("/system/aii/osinstall/options/lvm", "expected volume_group and size_mib")
        lines += [f"part pv.01 --size={size}{on_disk}", f"volgroup {vg} pv.01"]
    payload = _str(node, "payload").replace("{image}", payload_image)
    lines += [
        f"liveimg --url={payload}",
        f'bootloader --location={_str(node, "bootloader_location", "mbr")} --append="{kernel_append(node)}"',
        "reboot",
        "",
        "%post --erroronfail",
        "set -e",
        f"echo {shlex.quote('profile ' + _str(node, 'profile_url'))} > /etc/ccm.conf",
    ]
    components = _opt(node, "post_components", [])
    if not isinstance(components, list):
        raise ProfileError("/system/aii/osinstall/options/post_components", "expected a list of component names")
    if components:
        names = " ".join(shlex.quote(str(c)) for c in components)
        # --nodeps: the payload brings the software (liveimg), not spma, on which QWG components depend.
        profile_url = shlex.quote(_str(node, "profile_url"))
        lines.append(f"ncm-ncd --nodeps --profile {profile_url} --configure {names}")
    lines += [
        f"wget -q -O - {shlex.quote(ack_base.rstrip('/') + ACK_PATH)}",
        "%end",
        "",
    ]
    return "\n".join(lines)
