"""k3watch: security monitoring and logging for K3s clusters."""

__version__ = "0.1.0"
