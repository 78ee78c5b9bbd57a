"""K3s audit logging set-up and checks.

``k3watch k3s setup`` writes the audit policy, the log directory, a ``config.yaml.d`` drop-in
and (optionally) the audit webhook kubeconfig; ``k3watch k3s check`` reads what a node is
configured with and what its API server runs with, and reports the CIS audit checks.

- ``layout``: where K3s keeps things, relative to a ``--root`` standing in for ``/``.
- ``config``: reading ``config.yaml`` and its drop-ins, merged the way K3s merges them.
- ``apiserver``: ``kube-apiserver-arg`` values → effective API-server flags.
- ``process`` / ``journal``: the running server's command line and its last
  ``Running kube-apiserver`` log line.
- ``state``: every source gathered into one view of a node.
- ``render`` / ``setup``: the files set-up writes, their diff, and writing them safely.
- ``cis`` / ``check`` / ``report``: the checks and their text, JSON and JUnit output.
"""
