"""Service definitions for installs without Kubernetes objects: systemd units and openrc
scripts (Alpine-based K3s nodes) for the agent and the server.

Both run k3watch as its own unprivileged user. The agent reads root's 0600/0700 files (the
audit log, K3s's containerd log) through one capability, CAP_DAC_READ_SEARCH (read and
traverse, never write), and the journal through the ``systemd-journal`` group; nothing else.
The server needs no capability at all. Under systemd the rest of the system is read-only to
both (``ProtectSystem=strict``) except their state directory.
"""

from __future__ import annotations

from k3watch.deploy.values import Values

SERVER_UNIT = "k3watch-server.service"
AGENT_UNIT = "k3watch-agent.service"
SERVER_SCRIPT = "k3watch-server"
AGENT_SCRIPT = "k3watch-agent"

# Sandboxing both units share. Not MemoryDenyWriteExecute: cffi (argon2, cryptography's
# callbacks) needs writable executable memory. Not PrivateUsers: the agent's capability
# must act on the host's root-owned files.
_HARDENING = """\
NoNewPrivileges=yes
UMask=0077
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
"""


def systemd_units(values: Values) -> dict[str, str]:
    """``k3watch-server.service`` and ``k3watch-agent.service``, by file name."""
    host = values.host
    config = f"{host.config_dir}/k3watch.yaml"
    data_dir = f"{host.state_dir}/data"
    state = host.state_dir.removeprefix("/var/lib/")
    server = f"""\
# k3watch server: ingest, detection, alerts, web UI (docs/deploy.md). Rendered by
# `k3watch deploy systemd`. Configuration: {config} (server: section, data_dir {data_dir}).
[Unit]
Description=k3watch server (ingest, detection, alerts, web UI)
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User={host.user}
Group={host.group}
# An admin token for the first start, written to a file (0600) instead of the journal.
ExecStartPre={host.k3watch_bin} deploy bootstrap --data-dir {data_dir} \\
    --admin-token-file {host.state_dir}/initial-admin-token
ExecStart={host.k3watch_bin} server --config {config} --data-dir {data_dir}
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
StateDirectory={state}
StateDirectoryMode=0700
LimitNOFILE=65536
MemoryMax=2G
CapabilityBoundingSet=
AmbientCapabilities=
{_HARDENING}
[Install]
WantedBy=multi-user.target
"""
    agent = f"""\
# k3watch node agent: audit log or webhook, journal, containerd log → spool → server
# (docs/deploy.md). Rendered by `k3watch deploy systemd`. Configuration: {config}
# (agent: section, spool_dir {host.state_dir}/agent).
[Unit]
Description=k3watch node agent
After=network-online.target k3s.service k3s-agent.service
Wants=network-online.target

[Service]
Type=exec
User={host.user}
Group={host.group}
# The journal: its group. The audit log (root, 0700/0600) and containerd's log: read-only
# access to any file, the one capability the agent has.
SupplementaryGroups={host.journal_group}
AmbientCapabilities=CAP_DAC_READ_SEARCH
CapabilityBoundingSet=CAP_DAC_READ_SEARCH
ExecStart={host.k3watch_bin} agent --config {config} --log-format json
Restart=always
RestartSec=5
TimeoutStopSec=30
StateDirectory={state}/agent
StateDirectoryMode=0700
MemoryMax=384M
{_HARDENING}
[Install]
WantedBy=multi-user.target
"""
    return {SERVER_UNIT: server, AGENT_UNIT: agent}


def openrc_scripts(values: Values) -> dict[str, str]:
    """``/etc/init.d/k3watch-server`` and ``/etc/init.d/k3watch-agent``, by file name.

    supervise-daemon restarts a crashed process; ``capabilities`` and ``no_new_privs`` need
    OpenRC 0.45 or newer (Alpine 3.17+)."""
    host = values.host
    config = f"{host.config_dir}/k3watch.yaml"
    data_dir = f"{host.state_dir}/data"
    owner = f"{host.user}:{host.group}"
    server = f"""\
#!/sbin/openrc-run
# k3watch server (docs/deploy.md). Rendered by `k3watch deploy openrc`.
description="k3watch server: ingest, detection, alerts, web UI"
supervisor=supervise-daemon
command="{host.k3watch_bin}"
command_args="server --config {config} --data-dir {data_dir}"
command_user="{owner}"
no_new_privs=yes
umask=077
respawn_delay=5
respawn_max=0
output_log="/var/log/k3watch-server.log"
error_log="/var/log/k3watch-server.log"

depend() {{
    need net
    use dns logger
}}

start_pre() {{
    checkpath --directory --mode 0700 --owner {owner} {host.state_dir} || return 1
    checkpath --file --mode 0600 --owner {owner} /var/log/k3watch-server.log || return 1
    # An admin token for the first start, written to a file (0600) instead of the log.
    su -s /bin/sh -c '{host.k3watch_bin} deploy bootstrap --data-dir {data_dir} \
--admin-token-file {host.state_dir}/initial-admin-token' {host.user}
}}
"""
    agent = f"""\
#!/sbin/openrc-run
# k3watch node agent (docs/deploy.md). Rendered by `k3watch deploy openrc`. On openrc nodes
# K3s logs to /var/log/k3s.log: give the agent a `file` source with format k3s.
description="k3watch node agent"
supervisor=supervise-daemon
command="{host.k3watch_bin}"
command_args="agent --config {config} --log-format json"
command_user="{owner}"
# The audit log (root, 0700/0600) and K3s's logs: read-only access to any file.
capabilities="^cap_dac_read_search"
no_new_privs=yes
umask=077
respawn_delay=5
respawn_max=0
output_log="/var/log/k3watch-agent.log"
error_log="/var/log/k3watch-agent.log"

depend() {{
    need net
    after k3s k3s-agent
    use dns logger
}}

start_pre() {{
    checkpath --directory --mode 0700 --owner {owner} {host.state_dir} || return 1
    checkpath --directory --mode 0700 --owner {owner} {host.state_dir}/agent || return 1
    checkpath --file --mode 0600 --owner {owner} /var/log/k3watch-agent.log
}}
"""
    return {SERVER_SCRIPT: server, AGENT_SCRIPT: agent}
