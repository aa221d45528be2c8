"""The certificate injection station: application layer (CLI, config, engine, policy, drivers, audit)."""

__version__ = "0.1.0"
