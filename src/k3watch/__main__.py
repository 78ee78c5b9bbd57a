"""Allow ``python -m k3watch``."""

from k3watch.cli import main

main()
