"""Which k3watch rules cover the same idea as each Falco and Panther rule (data, not code).

A rule idea maps to the titles of the k3watch rules that detect it (any one matching counts as
"k3watch fires"), or is ``not_covered`` with the reason. Correlation inputs (informational
rules) stand for threshold rules: Panther's tests check its per-event filter, whose threshold
the platform applies on top, exactly as k3watch's correlation counts its input's matches.

Negative Falco cases name no rule (``detect: false`` means "nothing fires"), so
``FALCO_NEAR_MISSES`` says which idea each one is the near miss of.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Coverage:
    """The k3watch rules (titles) covering one Falco/Panther rule idea; empty = not covered."""

    titles: tuple[str, ...]
    note: str = ""  # why it is not covered, or how the mapping should be read

    @property
    def covered(self) -> bool:
        return bool(self.titles)


ANY_RULE = "*"  # any k3watch rule at all (for "must stay quiet on garbage")


def covered(*titles: str, note: str = "") -> Coverage:
    return Coverage(tuple(titles), note)


def not_covered(reason: str) -> Coverage:
    return Coverage((), reason)


# Titles of the k3watch library, named once here.
PRIVILEGED = "Privileged container requested"
HOST_NETWORK = "Pod uses the node's network namespace"
HOST_PID_IPC = "Pod shares the node's process or IPC namespace"
SENSITIVE_MOUNT = "Container mounts a sensitive host path"
HOST_PATH = "Container mounts a host path"
CAPABILITIES = "Container adds powerful Linux capabilities"
ANONYMOUS = "Anonymous request allowed"
EXEC = "Command run in a pod container (kubectl exec / attach)"
EXEC_CREDENTIALS = "Credentials read through kubectl exec"
KUBECTL_CP = "Files copied out of a pod (kubectl cp)"
SYSTEM_NAMESPACE_POD = "Pod created directly in a system namespace"
SERVICE_ACCOUNT = "Service account created"
CLUSTER_ADMIN_BINDING = "Binding grants cluster-admin or another all-powerful role"
ROLE_BINDING = "Role binding created or changed"
RBAC_CHANGE = "RBAC object created or changed"
WORKLOAD_CHANGE = "Workload created or changed"
DEPLOYMENT_DELETED = "Deployment deleted"
SECRET_BY_PERSON = "Secret created, changed or deleted by a person"
SECRETS_LISTED = "Secrets listed across the cluster or in kube-system"
SECRET_READ = "Secret read by an identity outside K3s's own components"
FORBIDDEN = "Request forbidden by authorization"
WEBHOOK = "Admission webhook configuration created or changed"
CRONJOB = "CronJob created or changed"
NODE_PORT = "Service exposed on the nodes' addresses (NodePort or LoadBalancer)"
INGRESS_NO_TLS = "Ingress published without TLS"
DAEMONSET = "DaemonSet created"
NAMESPACE_CREATED = "Namespace created"
NAMESPACE_DELETED = "Namespace deleted"
CONFIGMAP_BY_PERSON = "ConfigMap created, changed or deleted by a person"
CONFIGMAP_CREDENTIALS = "ConfigMap stores credentials"
SERVICE_ACCOUNT_CHANGED = "Service account changed, deleted or impersonated"
SYSTEM_ROLE_CHANGED = "Built-in system role or binding changed or deleted"
ROLE_ALL_POWERFUL = "Role grants every verb on every resource"
ROLE_ESCALATION = "Role grants impersonation, escalation, token or node-proxy rights"
ROLE_SENSITIVE = "Role grants secret reads, pod exec, bind, RBAC writes or wildcards"
# The three tiers of one idea, "what a new or changed role grants" (each excludes the others).
ROLE_GRANTS = (ROLE_ALL_POWERFUL, ROLE_ESCALATION, ROLE_SENSITIVE)
CLIENT_CERTIFICATE = "Client certificate for the API server requested or approved"
SECRET_REFUSED = "Secret request refused"
TOKEN_REQUEST = "Service-account token requested by something other than a kubelet"

_ACTIVITY = (
    "Falco activity rule (off unless the user enables it): k3watch keeps such events in the "
    "store for search and review rather than matching them with a rule"
)
_ALLOW_LIST = "needs the user's own allow list ({}); k3watch ships no such list rule"
_PUBLIC_IP = (
    "needs public/private classification of source addresses (cloud IP ranges); k3watch has "
    "no address-class rules"
)

MALFORMED_INPUT = "(malformed input is ignored)"

FALCO_RULES: dict[str, Coverage] = {
    "Create Disallowed Pod": not_covered(_ALLOW_LIST.format("allowed_k8s_containers")),
    "Create Privileged Pod": covered(PRIVILEGED),
    "Create HostNetwork Pod": covered(HOST_NETWORK),
    "Create Sensitive Mount Pod": covered(SENSITIVE_MOUNT),
    "Disallowed K8s User": not_covered(_ALLOW_LIST.format("allowed_k8s_users")),
    "Create Disallowed Namespace": not_covered(_ALLOW_LIST.format("allowed_namespaces")),
    "Create NodePort Service": covered(NODE_PORT),
    "Create/Modify Configmap With Private Credentials": covered(CONFIGMAP_CREDENTIALS),
    "Anonymous Request Allowed": covered(ANONYMOUS),
    "Attach/Exec Pod": covered(EXEC),
    "Pod Created in Kube Namespace": covered(SYSTEM_NAMESPACE_POD),
    "Service Account Created in Kube Namespace": covered(
        SERVICE_ACCOUNT, note="k3watch's rule covers every namespace"
    ),
    "System ClusterRole Modified/Deleted": covered(SYSTEM_ROLE_CHANGED),
    "Attach to cluster-admin Role": covered(CLUSTER_ADMIN_BINDING),
    "ClusterRole With Wildcard Created": covered(*ROLE_GRANTS),
    "ClusterRole With Write Privileges Created": covered(*ROLE_GRANTS),
    "ClusterRole With Pod Exec Created": covered(*ROLE_GRANTS),
    "K8s Deployment Created": covered(WORKLOAD_CHANGE),
    "K8s Deployment Deleted": covered(DEPLOYMENT_DELETED),
    "K8s Service Created": not_covered(_ACTIVITY),
    "K8s Service Deleted": not_covered(_ACTIVITY),
    "K8s ConfigMap Created": covered(CONFIGMAP_BY_PERSON),
    "K8s ConfigMap Deleted": covered(CONFIGMAP_BY_PERSON),
    "K8s Namespace Created": covered(NAMESPACE_CREATED),
    "K8s Namespace Deleted": covered(NAMESPACE_DELETED),
    "K8s Serviceaccount Created": covered(SERVICE_ACCOUNT),
    "K8s Serviceaccount Deleted": covered(SERVICE_ACCOUNT_CHANGED),
    "K8s Role/Clusterrole Created": covered(RBAC_CHANGE),
    "K8s Role/Clusterrole Deleted": not_covered(
        _ACTIVITY + " (deleting a role takes rights away; changes to system: roles are covered)"
    ),
    "K8s Role/Clusterrolebinding Created": covered(ROLE_BINDING),
    "K8s Role/Clusterrolebinding Deleted": covered(ROLE_BINDING),
    "K8s Secret Created": covered(SECRET_BY_PERSON),
    "K8s Secret Deleted": covered(SECRET_BY_PERSON),
    "json_pointer_example": not_covered("a test of Falco's field syntax, not a detection"),
    MALFORMED_INPUT: covered(ANY_RULE, note="a malformed event must raise nothing"),
}

FALCO_NEAR_MISSES: dict[str, str] = {
    "compat_engine_v4_create_allowed_pod": "Create Disallowed Pod",
    "compat_engine_v4_create_privileged_trusted_pod": "Create Privileged Pod",
    "compat_engine_v4_create_unprivileged_pod": "Create Privileged Pod",
    "compat_engine_v4_create_hostnetwork_trusted_pod": "Create HostNetwork Pod",
    "user_in_allowed_set": "Disallowed K8s User",
    "create_allowed_pod": "Create Disallowed Pod",
    "create_privileged_trusted_pod": "Create Privileged Pod",
    "create_unprivileged_pod": "Create Privileged Pod",
    "create_unprivileged_trusted_pod": "Create Privileged Pod",
    "create_sensitive_mount_trusted_pod": "Create Sensitive Mount Pod",
    "create_unsensitive_mount_pod": "Create Sensitive Mount Pod",
    "create_unsensitive_mount_trusted_pod": "Create Sensitive Mount Pod",
    "create_hostnetwork_trusted_pod": "Create HostNetwork Pod",
    "create_nohostnetwork_pod": "Create HostNetwork Pod",
    "create_nohostnetwork_trusted_pod": "Create HostNetwork Pod",
    "create_nonodeport_service": "Create NodePort Service",
    "create_configmap_no_private_creds": "Create/Modify Configmap With Private Credentials",
    "namespace_in_allowed_set": "Create Disallowed Namespace",
    "create_service_account_token_secret": "K8s Secret Created",
    "create_kube_system_secret": "K8s Secret Created",
    "fal_01_003": MALFORMED_INPUT,
}

_HERE = Path(__file__).resolve().parent

# Falco rules files a case adds on top of the default rules, and the k3watch rules or filters
# that do the same for the idea the case tests (loaded beside the library for that case). Empty
# when the file only changes Falco rules other than the one under test: the allow lists of
# uncovered ideas, and disallow_kactivity.yaml, which turns Falco's activity rules off so that
# they do not fire beside the rule a case is about.
FALCO_RULES_FILES: dict[str, tuple[Path, ...]] = {
    "trust_nginx_container.yaml": (_HERE / "falco_overrides" / "trust_nginx_container.yml",),
    "allow_only_apache_container.yaml": (),  # Create Disallowed Pod (not covered)
    "allow_nginx_container.yaml": (),  # Create Disallowed Pod (not covered)
    "allow_namespace_foo.yaml": (),  # Create Disallowed Namespace (not covered)
    "allow_user_some-user.yaml": (),  # Disallowed K8s User (not covered)
    "disallow_kactivity.yaml": (),
    "single_rule_with_json_pointer.yaml": (),  # json_pointer_example (not covered)
}

PANTHER_RULES: dict[str, Coverage] = {
    "Amazon.EKS.AnonymousAPIAccess": covered(ANONYMOUS),
    "Amazon.EKS.Audit.Multiple403": covered(
        FORBIDDEN, note="per-event input of 'Many forbidden requests by one identity'"
    ),
    "Amazon.EKS.Audit.SystemNamespaceFromPublicIP": not_covered(_PUBLIC_IP),
    "Azure.MonitorActivity.Kubernetes.RoleBindingCreated": covered(ROLE_BINDING),
    "GCP.GKE.Kubernetes.Cron.Job.Created.Or.Modified": covered(CRONJOB),
    "GCP.K8S.Pod.Create.Or.Modify.Host.Path.Volume.Mount": covered(SENSITIVE_MOUNT),
    "GCP.K8S.Privileged.Pod.Created": covered(PRIVILEGED),
    "GCP.K8S.Service.Type.NodePort.Deployed": covered(NODE_PORT),
    "GCP.K8s.ExecIntoPod": covered(EXEC),
    "GCP.K8s.IOC.Activity": not_covered("needs threat-intelligence enrichment (Tor exit nodes)"),
    "GCP.K8s.New.Daemonset.Deployed": covered(DAEMONSET),
    "GCP.K8s.Pod.Attached.To.Node.Host.Network": covered(HOST_NETWORK),
    "GCP.K8s.Pod.Using.Host.PID.Namespace": covered(HOST_PID_IPC),
    "Kubernetes.API.AnonymousAccess": covered(ANONYMOUS),
    "Kubernetes.API.IOC.Activity": not_covered(
        "needs threat-intelligence enrichment (Tor exit nodes)"
    ),
    "Kubernetes.API.Multiple403.PublicIP": not_covered(_PUBLIC_IP),
    "Kubernetes.AdmissionController.Created": covered(WEBHOOK),
    "Kubernetes.BulkSecretAccess": covered(
        SECRET_READ,
        SECRETS_LISTED,
        note="per-event inputs; k3watch's correlation is 'Many different secrets read by one "
        "identity'",
    ),
    "Kubernetes.ClientCertificate.Created": covered(CLIENT_CERTIFICATE),
    "Kubernetes.ClusterRoleBinding.Privileged": covered(CLUSTER_ADMIN_BINDING),
    "Kubernetes.CronJob.CreatedOrModified": covered(CRONJOB),
    "Kubernetes.DaemonSet.Created": covered(DAEMONSET),
    "Kubernetes.Ingress.NoTLS": covered(INGRESS_NO_TLS),
    "Kubernetes.Kubectl.CP.Operation": covered(KUBECTL_CP),
    "Kubernetes.Pod.Dangerous.Capabilities": covered(CAPABILITIES),
    "Kubernetes.Pod.Exec": covered(EXEC),
    "Kubernetes.Pod.Host.IPC": covered(HOST_PID_IPC),
    "Kubernetes.Pod.Host.Network": covered(HOST_NETWORK),
    "Kubernetes.Pod.Host.PID": covered(HOST_PID_IPC),
    "Kubernetes.Pod.HostPath.Volume": covered(HOST_PATH),
    "Kubernetes.Pod.Privileged.Created": covered(PRIVILEGED),
    "Kubernetes.Pod.StealServiceAccountToken": covered(EXEC_CREDENTIALS),
    "Kubernetes.Pod.SystemNamespace": covered(SYSTEM_NAMESPACE_POD),
    "Kubernetes.Role.NodeProxyPermissions": covered(*ROLE_GRANTS),
    "Kubernetes.Role.PodExec": covered(*ROLE_GRANTS),
    "Kubernetes.Role.Wildcard": covered(*ROLE_GRANTS),
    "Kubernetes.Role.WritePermissions": covered(*ROLE_GRANTS),
    "Kubernetes.Secret.AccessDenied": covered(
        SECRET_REFUSED, note="per-event input of 'Repeated refused attempts to read secrets'"
    ),
    "Kubernetes.Secrets.DumpAllNamespaces": covered(SECRETS_LISTED),
    "Kubernetes.Service.NodePort.Deployed": covered(NODE_PORT),
    "Kubernetes.ServiceAccount.TokenCreated": covered(TOKEN_REQUEST),
    "Kubernetes.System.Principal.PublicIP": not_covered(_PUBLIC_IP),
    "Kubernetes.SystemRole.Modified": covered(SYSTEM_ROLE_CHANGED),
}

# Every case where k3watch and the labelled case disagree, with the reason in one line. The
# agreement test fails on a disagreement missing here (explain it, or fix the rule) and on an
# entry that no longer disagrees (remove it).
_REQUEST_OBJECT_COMMAND = (
    "the command is only in requestObject.command (hand-written log); the API server records "
    "exec commands in requestURI, which is where k3watch reads them"
)
_SYSTEM_NAMESPACES_EXCLUDED = (
    "Panther skips system namespaces; k3watch does not (attackers hide there) and allowlists "
    "K3s's own pods by name instead"
)
_ROOT_IS_NOT_PRIVILEGED = (
    "running as root is not privileged mode; k3watch does not alert on root containers (most "
    "images run as root)"
)
_NOT_K3S_COMPONENT = (
    "the creator is an operator's service account, not one of the K3s components k3watch allowlists"
)
_ORDINARY_WRITES = (
    "write access to ordinary resources is what application roles grant; k3watch flags writes "
    "to RBAC objects, secret reads, exec, bind and wildcards"
)
_ROLE_UPDATES = "k3watch also checks updates and patches of a role, which grant the same rights"
_SECRET_LISTERS = (
    "k3watch excludes only the K3s identities that list secrets cluster-wide (controller-manager, "
    "supervisor, apiserver, Traefik); other listers need a user filter"
)

EXPLAINED_DISAGREEMENTS: dict[str, str] = {
    "Falco: create_pod_in_kube_system_namespace": (
        "the pod comes from the ReplicaSet controller; k3watch alerts only on bare pods made by "
        "other identities, since every K3s system pod is a controller's"
    ),
    "Falco: create_pod_in_kube_public_namespace": (
        "the pod comes from the ReplicaSet controller; k3watch alerts only on bare pods made by "
        "other identities, since every K3s system pod is a controller's"
    ),
    "Falco: create_kube_system_secret": (
        "a person (kubeadm as 'admin') created a secret; Falco's activity rule skips kube-system, "
        "k3watch alerts (low) on any person's secret change there"
    ),
    "Panther: Amazon.EKS.AnonymousAPIAccess: Anonymous API Access Web Scanner Allowed": (
        "anonymous GET /version is public by design (system:public-info-viewer); k3watch skips "
        "health, version and discovery paths"
    ),
    "Panther: Amazon.EKS.AnonymousAPIAccess: ELB Health Check from Public IP": (
        "anonymous /healthz is public by design; Panther flags it only for its public source "
        "address, which k3watch does not classify"
    ),
    "Panther: Amazon.EKS.AnonymousAPIAccess: Anonymous API Access Web Scanner Denied": (
        "the anonymous request was refused (403); k3watch's rule is about anonymous requests "
        "that were allowed"
    ),
    "Panther: Amazon.EKS.Audit.Multiple403: 403 and Private IP": (
        "Panther ignores refusals from private addresses; k3watch counts every refusal (inside "
        "a cluster every address is private)"
    ),
    "Panther: GCP.K8S.Privileged.Pod.Created: Run-As-Root Pod Created": _ROOT_IS_NOT_PRIVILEGED,
    "Panther: GCP.K8S.Privileged.Pod.Created: GCP Service Account Creating Privileged Pod "
    "(Excluded)": (
        "Panther allowlists GKE's own robot account, which does not exist on K3s (K3s components "
        "are allowlisted by filters)"
    ),
    "Panther: GCP.K8S.Privileged.Pod.Created: Privileged Pod in System Namespace (Excluded)": (
        _SYSTEM_NAMESPACES_EXCLUDED
    ),
    "Panther: Kubernetes.AdmissionController.Created: Webhook Update (Not Create)": (
        "k3watch also alerts when a person rewrites an existing webhook, which is as dangerous "
        "as creating one"
    ),
    "Panther: Kubernetes.API.AnonymousAccess: GCP GKE Anonymous API Access": (
        "the GKE log names the user only in authenticationInfo.authoritySelector, not "
        "principalEmail, so the event has no user"
    ),
    "Panther: Kubernetes.ClusterRoleBinding.Privileged: AKS ClusterRoleBinding to system:masters": (
        "the roleRef names a ClusterRole 'system:masters', which is a group, not a role; k3watch "
        "looks for system:masters among the subjects"
    ),
    "Panther: Kubernetes.ClusterRoleBinding.Privileged: RoleBinding (not ClusterRoleBinding)": (
        "k3watch also alerts on a RoleBinding to cluster-admin (full control of the namespace)"
    ),
    "Panther: Kubernetes.ClusterRoleBinding.Privileged: System principal creating binding "
    "(excluded)": (
        "the creator is a service account, not one of the K3s components k3watch allowlists"
    ),
    "Panther: Kubernetes.Kubectl.CP.Operation: AKS kubectl cp from pod with SSH keys": (
        _REQUEST_OBJECT_COMMAND
    ),
    "Panther: Kubernetes.Kubectl.CP.Operation: EKS system namespace (excluded)": (
        "Panther skips kube-system; k3watch alerts on copies out of any namespace"
    ),
    "Panther: Kubernetes.Pod.SystemNamespace: GKE pod created in gke-system": (
        "gke-system is GKE's namespace; k3watch's system namespaces are K3s's (kube-system, "
        "kube-public, kube-node-lease)"
    ),
    "Panther: Kubernetes.Pod.SystemNamespace: System principal creating pod in kube-system "
    "(excluded)": (
        "system:serviceaccount:kube-system:controller is not one of the workload controllers "
        "k3watch excludes"
    ),
    "Panther: Kubernetes.Pod.Host.IPC: System Namespace with HostIPC (Excluded)": (
        _SYSTEM_NAMESPACES_EXCLUDED
    ),
    "Panther: Kubernetes.Pod.HostPath.Volume: System Namespace Pod (Excluded)": (
        _SYSTEM_NAMESPACES_EXCLUDED
    ),
    "Panther: Kubernetes.Pod.Privileged.Created: Run-As-Root Pod Created": _ROOT_IS_NOT_PRIVILEGED,
    "Panther: Kubernetes.Pod.Privileged.Created: Pod with runAsUser=0 (root)": (
        _ROOT_IS_NOT_PRIVILEGED
    ),
    "Panther: Kubernetes.Pod.Privileged.Created: Privileged Pod in System Namespace (Excluded)": (
        _SYSTEM_NAMESPACES_EXCLUDED
    ),
    "Panther: Kubernetes.BulkSecretAccess: User Lists Secrets": (
        "a list in one application namespace; k3watch alerts on secret lists only cluster-wide "
        "or in kube-system (namespaced lists are routine for controllers)"
    ),
    "Panther: Kubernetes.BulkSecretAccess: User Watches Secrets": (
        "a watch in one application namespace; k3watch alerts on secret lists only cluster-wide "
        "or in kube-system (namespaced watches are routine for controllers)"
    ),
    "Panther: Kubernetes.BulkSecretAccess: User Gets Secret - Access Denied": (
        "a refused read is counted by 'Repeated refused attempts to read secrets', not as a read"
    ),
    "Panther: Kubernetes.BulkSecretAccess: System Principal Excluded": _SECRET_LISTERS,
    "Panther: Kubernetes.Pod.StealServiceAccountToken: AKS read serviceaccount directory": (
        _REQUEST_OBJECT_COMMAND
    ),
    "Panther: Kubernetes.Pod.StealServiceAccountToken: EKS copy entire serviceaccount "
    "directory": _REQUEST_OBJECT_COMMAND,
    "Panther: Kubernetes.Pod.StealServiceAccountToken: Regular user in system namespace "
    "(alert)": _REQUEST_OBJECT_COMMAND,
    "Panther: Kubernetes.Pod.StealServiceAccountToken: System principal in regular namespace "
    "(alert)": _REQUEST_OBJECT_COMMAND,
    "Panther: Kubernetes.Pod.StealServiceAccountToken: EKS IRSA token theft": (
        _REQUEST_OBJECT_COMMAND
    ),
    "Panther: Kubernetes.Pod.StealServiceAccountToken: AKS workload identity token theft": (
        _REQUEST_OBJECT_COMMAND
    ),
    "Falco: create_writable_cluster_role": (
        "its only write is delete on non-resource URLs (/api, /healthz…), which touches no "
        "object; k3watch flags writes to RBAC objects"
    ),
    "Panther: Kubernetes.DaemonSet.Created: System controller creating DaemonSet in kube-system "
    "(excluded)": (
        "the daemon-set-controller creates pods, not DaemonSets; k3watch excludes only the K3s "
        "identities that install DaemonSets"
    ),
    "Panther: Kubernetes.Ingress.NoTLS: System namespace (excluded)": (
        "Panther skips kube-system; k3watch checks ingresses in every namespace"
    ),
    "Panther: Kubernetes.Ingress.NoTLS: Updating existing ingress (not creating)": (
        "k3watch also checks a person's updates, which publish the same route without TLS"
    ),
    "Panther: Kubernetes.Role.NodeProxyPermissions: System principal creating role (excluded)": (
        _NOT_K3S_COMPONENT
    ),
    "Panther: Kubernetes.Role.NodeProxyPermissions: Updating existing role (not creating)": (
        _ROLE_UPDATES
    ),
    "Panther: Kubernetes.Role.PodExec: System principal creating role (excluded)": (
        _NOT_K3S_COMPONENT
    ),
    "Panther: Kubernetes.Role.PodExec: Updating existing role (not creating)": _ROLE_UPDATES,
    "Panther: Kubernetes.Role.Wildcard: System principal creating role (excluded)": (
        _NOT_K3S_COMPONENT
    ),
    "Panther: Kubernetes.Role.Wildcard: Updating existing role (not creating)": _ROLE_UPDATES,
    "Panther: Kubernetes.Role.WritePermissions: AKS Role with create and update on pods": (
        _ORDINARY_WRITES
    ),
    "Panther: Kubernetes.Role.WritePermissions: GKE ClusterRole with deletecollection": (
        _ORDINARY_WRITES
    ),
    "Panther: Kubernetes.Role.WritePermissions: EKS Role with mixed read and write "
    "permissions": _ORDINARY_WRITES,
    "Panther: Kubernetes.Secret.AccessDenied: EKS failed secret get (404 Not Found)": (
        "404 is a missing secret, not a refusal; k3watch counts refusals (403)"
    ),
    "Panther: Kubernetes.Secret.AccessDenied: AKS failed secret get (401 Unauthorized)": (
        "an unauthenticated request (401) is counted by the brute-force correlation, not as a "
        "refused secret request"
    ),
    "Panther: Kubernetes.Secret.AccessDenied: System service account failed get (excluded)": (
        "k3watch records every refused secret request and lets the correlation decide; Panther "
        "skips system service accounts"
    ),
    "Panther: Kubernetes.Secret.AccessDenied: List secrets operation (not get)": (
        "k3watch records refused lists and watches of secrets too, not only gets"
    ),
    "Panther: Kubernetes.SystemRole.Modified: System:coredns modified (excluded - expected)": (
        "Panther expects EKS to update system:coredns; on K3s only K3s does, so a person's "
        "change is alerted"
    ),
    "Panther: Kubernetes.SystemRole.Modified: System principal modifying system role "
    "(excluded)": _NOT_K3S_COMPONENT,
}
