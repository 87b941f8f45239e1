"""Loopback emulators of the vendors' file APIs; start one with ``daemon.sandbox.runner.start_sandbox``."""
