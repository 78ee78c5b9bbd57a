"""``k3watch deploy install --k3s``: the audit set-up of ``k3watch k3s setup`` plus the
rendered manifests in K3s's auto-deploy directory, as one plan.

The plan is :func:`k3watch.policy.k3s.setup.plan_setup`'s, with the manifests added before
the ``config.yaml.d`` drop-in (which stays the last file written); it is shown as a diff and
written by the same :func:`~k3watch.policy.k3s.setup.apply_plan`: atomic writes, backups,
nothing when the plan is refused, nothing to do the second time. Files holding secrets
(the rendered Secrets, a webhook kubeconfig with its token) are described, never shown.

K3s applies every ``.yaml`` file of ``/var/lib/rancher/k3s/server/manifests`` as soon as it
appears or changes, and ignores the ``.bak.<time>`` copies. On an HA cluster every server
node needs the same files (each server's deploy controller applies its own directory): run
the install with the same values on each.
"""

from __future__ import annotations

from k3watch.deploy import paths
from k3watch.deploy.configs import webhook_url
from k3watch.deploy.manifests import render
from k3watch.deploy.secrets import webhook_token
from k3watch.deploy.values import Values, line_of
from k3watch.errors import UsageError
from k3watch.policy.k3s.layout import Layout
from k3watch.policy.k3s.setup import Plan, dir_change, file_change, plan_setup

MANIFEST_MODE = 0o600  # the auto-deploy directory is root's; rendered Secrets may be in it


def plan_install(layout: Layout, values: Values) -> Plan:
    """Everything ``deploy install --k3s`` would write on the node under ``layout.root``."""
    rendered = render(values)
    webhook = webhook_url(values) if values.audit.source == "webhook" else None
    token = webhook_token(values) if webhook is not None else None
    if webhook is not None and token is None:
        raise UsageError(
            "audit.source webhook needs audit.webhook_token_file: the token is written into "
            "the API server's webhook kubeconfig on this node",
            line_of(values, "$.audit.source"),
            hint="openssl rand -hex 32 > webhook.token, and name that file",
        )
    plan = plan_setup(layout, values.audit.profile, webhook, webhook_token=token)
    if layout.looks_like_agent():
        plan.refusals.append(
            "only a K3s agent is installed here: run deploy install --k3s on the server nodes "
            "(the agent DaemonSet reaches this node by itself)"
        )
    if plan.refusals:
        return plan
    manifests = [
        dir_change(layout, paths.K3S_MANIFESTS_DIR, None),
        file_change(layout, paths.MANIFEST_FILE, rendered.manifest, MANIFEST_MODE),
    ]
    if rendered.secrets:
        manifests.append(
            file_change(
                layout,
                paths.SECRETS_MANIFEST_FILE,
                rendered.secrets_manifest,
                MANIFEST_MODE,
                secret=True,
            )
        )
    at = next(i for i, c in enumerate(plan.changes) if c.path == plan.dropin)
    plan.changes[at:at] = manifests
    return plan
