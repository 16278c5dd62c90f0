"""aii-shellfe: prepare the install server for nodes, and switch them between installing and booting.

  aii-shellfe --configure|--install|--boot|--status|--remove HOST... --profiles DIR|URL --root DIR
              [--http-base URL] [--payload-image NAME]

For each HOST the profile `<profiles>/profile_<HOST>.json` (else `profile_<HOST>.xml`, panc's XML form)
is read, from a directory or a profile server's URL.  Under `--root` (the install server's served tree):

* `--configure`: the kickstart `ks/<fqdn>.ks`, the pxelinux and iPXE entries, the DHCP and DNS entries;
  a node with no state yet is set to boot from its disk.
* `--install`: the node's next network boot installs it.  `--boot`: it boots from its disk.
* `--status`: `install`, `boot`, `undefined` or `error` per node.  `--remove`: everything of the node.

Exit status 0 only if every host succeeded; each failure is reported with the host and the reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quattor.aii import dhcp, ks, node
from quattor.aii.nbp import NbpTree
from quattor.profile import ProfileError, load_node

KS_DIR = "ks"
DHCP_DIR = "aii"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aii-shellfe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    action = parser.add_mutually_exclusive_group(required=True)
    for name in ("configure", "install", "boot", "status", "remove"):
        action.add_argument(f"--{name}", dest="action", action="store_const", const=name)
    parser.add_argument("hosts", nargs="+", metavar="HOST")
    parser.add_argument("--profiles", required=True, help="directory or URL holding profile_<host>.json")
    parser.add_argument("--root", type=Path, required=True, help="the install server's TFTP/HTTP root")
    parser.add_argument("--http-base", default="http://gridinstall", help="the install server's URL")
    parser.add_argument("--payload-image", default="payload", help="replaces {image} in payload URLs")
    args = parser.parse_args(argv)
    tree = NbpTree(args.root, args.http_base)
    entries = dhcp.DhcpEntries(args.root / DHCP_DIR)
    failures = 0
    for host in args.hosts:
        try:
            aii = node.read(load_node(args.profiles, host))
            result = run(args.action, aii, tree, entries, args)
            print(f"[INFO] aii-shellfe: {aii.fqdn}: {result}")
        except (ProfileError, OSError, ValueError) as exc:
            failures += 1
            print(f"[ERROR] aii-shellfe: {host}: {exc}", file=sys.stderr)
        except Exception as exc:  # a bug: reported as this host's failure, the other hosts still done
            failures += 1
            print(f"[ERROR] aii-shellfe: {host}: internal error ({type(exc).__name__}: {exc}); a bug", file=sys.stderr)
    return 1 if failures else 0


def run(action: str, aii: node.AiiNode, tree: NbpTree, entries: dhcp.DhcpEntries, args: argparse.Namespace) -> str:
    if action == "configure":
        ks_text = ks.kickstart(aii, payload_image=args.payload_image, ack_base=args.http_base)
        ks_path = args.root / KS_DIR / f"{aii.fqdn}.ks"
        ks_path.parent.mkdir(parents=True, exist_ok=True)
        ks_path.write_text(ks_text)
        tree.configure(aii.boot, aii.boot_entry())
        entries.configure(aii)
        return f"configured (state {tree.status(aii.boot)})"
    if action == "install":
        tree.install(aii.boot)
        return "will install at its next network boot"
    if action == "boot":
        tree.boot(aii.boot)
        return "will boot from its local disk"
    if action == "status":
        return tree.status(aii.boot)
    tree.remove(aii.boot)
    entries.remove(aii)
    (args.root / KS_DIR / f"{aii.fqdn}.ks").unlink(missing_ok=True)
    return "removed"


if __name__ == "__main__":
    sys.exit(main())
