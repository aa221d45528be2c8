"""The device link: the wire protocol's codec (codec.py, docs/protocol.md) and the station's
serial transport. Nothing in this package imports the engine or the UI."""
