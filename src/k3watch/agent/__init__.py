"""The node agent: live sources → disk spool → the server's ingest API.

``config`` holds the ``agent:`` section of the configuration file, ``spool`` the durable
queue on disk, ``forward`` the thread that sends the spool to the server, ``run`` the loop
that reads the sources into the spool, and ``metrics`` the agent's ``/metrics``, ``/healthz``
and log format. See docs/agent.md.

This package's ``__init__`` imports nothing: :mod:`k3watch.config` imports
:mod:`k3watch.agent.config` for every command, and only ``k3watch agent`` needs the rest.
"""
