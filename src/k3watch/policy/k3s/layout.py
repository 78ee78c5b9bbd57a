"""Where K3s keeps its configuration and audit files, under a root standing in for ``/``.

Every path k3watch prints or writes into a flag is a *node path* (what K3s sees, such as
``/etc/rancher/k3s/config.yaml``); :class:`Layout` maps it to the *host path* under
``--root``, so the commands can run against a directory tree in tests and in CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CONFIG_FILE = "/etc/rancher/k3s/config.yaml"
SERVER_DIR = "/var/lib/rancher/k3s/server"
POLICY_FILE = f"{SERVER_DIR}/audit-policy.yaml"
LOG_DIR = f"{SERVER_DIR}/logs"
AUDIT_LOG = f"{LOG_DIR}/audit.log"
WEBHOOK_KUBECONFIG = f"{SERVER_DIR}/audit-webhook-kubeconfig.yaml"
# High enough to sort after the drop-ins people usually write (10-…, 50-…), so a later file
# is unlikely to replace our flags; see setup.py for how a conflict is reported.
DROPIN_NAME = "90-k3watch-audit.yaml"
DROPIN_SUFFIX = "-k3watch-audit"

# Modes the hardening guide and the CIS file-permission checks expect.
POLICY_MODE = 0o600
DROPIN_MODE = 0o600
WEBHOOK_MODE = 0o600  # a kubeconfig may hold credentials
LOG_DIR_MODE = 0o700  # audit events name users, source IPs and object names
AUDIT_LOG_MODE = 0o600

# Where openrc installs send K3s's output (there is no journal there).
OPENRC_LOG = "/var/log/k3s.log"


@dataclass(frozen=True, slots=True)
class Layout:
    """A node's file system, seen through ``root`` (``/`` on a real node)."""

    root: Path
    config_file: str = CONFIG_FILE

    @property
    def dropin_dir(self) -> str:
        """K3s reads drop-ins from the directory named after the config file plus ``.d``."""
        return self.config_file + ".d"

    def host(self, node_path: str) -> Path:
        """The host path of a node path (relative node paths are taken from ``/``)."""
        relative = PurePosixPath(node_path)
        parts = relative.parts[1:] if relative.is_absolute() else relative.parts
        return self.root.joinpath(*parts)

    def node(self, host_path: Path) -> str:
        """The node path of a host path under the root (the host path itself when outside)."""
        try:
            relative = host_path.relative_to(self.root)
        except ValueError:
            return str(host_path)
        return "/" + relative.as_posix() if relative.parts else "/"

    @property
    def is_real_root(self) -> bool:
        """Whether the layout is the running system itself (journal and processes are real)."""
        return self.root.resolve() == Path("/")

    def init_system(self) -> str:
        """``openrc`` when K3s was installed as an openrc service, else ``systemd``."""
        if self.host("/etc/init.d/k3s").exists():
            return "openrc"
        return "systemd"

    def restart_command(self) -> str:
        """The command that restarts the K3s server on this node."""
        if self.init_system() == "openrc":
            return "rc-service k3s restart"
        return "systemctl restart k3s"

    def looks_like_agent(self) -> bool:
        """Whether only a K3s agent is installed here (agents run no API server)."""
        agent = (
            self.host("/etc/systemd/system/k3s-agent.service").exists()
            or self.host("/etc/init.d/k3s-agent").exists()
        )
        server = (
            self.host("/etc/systemd/system/k3s.service").exists()
            or self.host("/etc/init.d/k3s").exists()
        )
        return agent and not server
