"""Where events and alerts are kept: the ``Store`` protocol and its backends."""
