"""The OCI runtime bundle (config.json) of the install-server container.

It joins the lab's server network namespace (created beforehand, holding the veth end) and sets no
`rlimits`: setting them fails on these machines (why podman cannot start containers here), and `runc run`
of a bundle without them works.  The root filesystem is the shared read-only image; everything per lab is
bind-mounted in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CAPS = [
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]


@dataclass(frozen=True)
class Bind:
    source: Path
    target: str
    readonly: bool = True


def config_json(*, rootfs: Path, netns_path: Path, hostname: str, args: list[str], binds: list[Bind]) -> str:
    mounts: list[dict[str, object]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]
    for target in ("/tmp", "/run", "/var/lib/misc"):
        mounts.append({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]})
    for b in binds:
        mounts.append(
            {
                "destination": b.target,
                "type": "bind",
                "source": str(b.source),
                "options": ["rbind", "ro" if b.readonly else "rw"],
            }
        )
    spec = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"],
            "cwd": "/",
            "capabilities": {k: CAPS for k in ("bounding", "effective", "inheritable", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "network", "path": str(netns_path)},
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    return json.dumps(spec, indent=1)
