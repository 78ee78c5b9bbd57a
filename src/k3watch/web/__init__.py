"""The web UI served by the k3watch server: pages for triage, search, rules, silences and
reviews, rendered on the server (Jinja2 templates, SVG charts), no script from elsewhere."""
