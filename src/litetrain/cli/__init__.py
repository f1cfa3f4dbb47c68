"""The ``litetrain`` command: one module per subcommand, assembled in :mod:`litetrain.cli.app`."""
