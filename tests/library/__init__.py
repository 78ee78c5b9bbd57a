"""Evaluation of the built-in rule library on data nobody on this project wrote.

- ``datasets``: audit events from the public corpora (hkerma's Helm-churn CSV, Falco's and
  Panther's labelled test cases) and from the K3s sample generator;
- ``evaluate``: runs events through ``k3watch.scan.scan`` with the built-in library;
- ``agreement_map`` and ``agreement``: which k3watch rules cover each Falco / Panther rule, and
  how often k3watch agrees with their labels;
- ``test_*``: the noise budget, the hkerma churn and the agreement, as tests;
- ``report``: ``python -m tests.library.report`` prints the numbers for docs/rules.md.
"""
