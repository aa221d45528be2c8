"""The station side of the device link: serial transport, wire codec and link errors."""
