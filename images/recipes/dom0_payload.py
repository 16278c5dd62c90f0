"""The dom0 payload as the host installer's `liveimg`: a zstd tarball of the dom0 tree with the system under
test installed, the lab's network service (the address on xenbr0), guest console logging, fresh SSH host
keys per host, and without the kernel modules a VM never loads."""

from __future__ import annotations

import tempfile
from pathlib import Path

from foundation.process import run
from images import debian_tree, store
from images.recipes import dom0

# Kernel module trees no lab machine needs: a third of the payload's size.
UNNEEDED_MODULES = (
    "sound",
    "drivers/gpu",
    "drivers/media",
    "drivers/infiniband",
    "drivers/net/wireless",
    "drivers/staging",
    "drivers/usb",
    "drivers/bluetooth",
    "net/wireless",
    "drivers/iio",
    "drivers/hid",
    "drivers/input/touchscreen",
    "drivers/net/ethernet/mellanox",
    "drivers/net/ethernet/chelsio",
    "drivers/scsi/lpfc",
    "drivers/scsi/qla2xxx",
    "drivers/isdn",
)
# xenconsoled keeps every guest's console in /var/log/xen/console/guest-<name>.log: the guests' consoles
# for the run's artifacts (and for a person with `xl console` closed).
XENCONSOLED_ARGS = 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console --timestamp=guest"\n'


def build() -> Path:
    tree = dom0.build()

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            root = Path(tmp) / "root"
            run(["cp", "-a", tree / "rootfs", root], timeout=600)
            dom0.install_sut(root)
            debian_tree.install_network(root, bridge="xenbr0")
            debian_tree.fresh_ssh_host_keys(root)
            with (root / "etc/default/xen").open("a") as defaults:
                defaults.write(XENCONSOLED_ARGS)
            (root / "var/log/xen/console").mkdir(parents=True, exist_ok=True)  # xenconsoled does not make it
            debian_tree.prune_modules(root, UNNEEDED_MODULES)
            debian_tree.mark_up_to_date(root)
            debian_tree.pack(root, out / "dom0.tar.zst")

    inputs = {
        "tree": tree.name,
        "sut": dom0.sut_digest(),
        "recipe": store.source_digest(
            Path(__file__),
            Path(dom0.__file__),  # install_sut
            *debian_tree.sources("xenlab-network", "xenlab-network.service", "udhcpc.script"),
        ),
    }
    return store.build_or_reuse("dom0-payload", inputs, make)
