"""What every command gets from the global options: where the configuration lives."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CliContext:
    config_arg: str | None

    def config_path(self) -> Path:
        """--config, then $STATION_CONFIG, then ./station.toml (docs/cli.md)."""
        if self.config_arg:
            return Path(self.config_arg)
        env = os.environ.get("STATION_CONFIG")
        if env:
            return Path(env)
        return Path("station.toml")
