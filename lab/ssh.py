"""SSH into the lab's machines from the test process, for testinfra and for a person.

A key pair per lab; an ssh_config whose ProxyCommand enters the lab namespace (`lab.relay`), with
ControlMaster/ControlPersist so that a test's many assertions share one connection, and a connect timeout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import testinfra.host

from foundation import netns
from foundation.process import run


class SshAccess:
    def __init__(self, key: Path, config: Path) -> None:
        self.key = key
        self.config = config
        self.used: set[str] = set()

    @property
    def public_key(self) -> str:
        return self.key.with_suffix(".pub").read_text().strip()

    def host(self, address: str) -> testinfra.host.Host:
        """A testinfra host for root@address."""
        import testinfra

        self.used.add(address)
        return testinfra.get_host(f"ssh://root@{address}", ssh_config=str(self.config))

    def argv(self, address: str) -> list[str]:
        """The ssh command line for root@address (append a remote command)."""
        self.used.add(address)
        return ["ssh", "-F", str(self.config), f"root@{address}"]

    def command(self, address: str) -> str:
        return f"ssh -F {self.config} root@{address}"

    def close(self) -> None:
        """End the shared connections (ControlPersist would keep them for two minutes)."""
        for address in self.used:
            run(["ssh", "-F", self.config, "-O", "exit", address], check=False, timeout=10)


def setup(work_dir: Path, netns_name: str) -> SshAccess:
    work_dir.mkdir(parents=True, exist_ok=True)
    key = work_dir / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"xenlab@{netns_name}", "-f", key])
    proxy = " ".join(netns.exec_argv(netns_name, [sys.executable, "-m", "lab.relay", "%h", "%p"]))
    config = work_dir / "ssh_config"
    config.write_text(
        "Host *\n"
        "  User root\n"
        f"  IdentityFile {key}\n"
        "  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n"
        "  ConnectTimeout 15\n"
        "  ServerAliveInterval 10\n"
        "  ControlMaster auto\n"
        f"  ControlPath {work_dir}/cm-%C\n"
        "  ControlPersist 120\n"
        f"  ProxyCommand {proxy}\n"
    )
    return SshAccess(key, config)
