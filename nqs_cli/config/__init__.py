"""The TOML config contract: schema, parsing, resolution and export."""

from nqs_cli.config.parse import *  # noqa: F401,F403
