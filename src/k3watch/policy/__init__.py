"""Audit logging set-up: policy profiles, lint, simulation, rule coverage, K3s set-up and checks."""
