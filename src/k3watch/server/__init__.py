"""The k3watch server: the HTTP API, its authentication and its transport security."""
