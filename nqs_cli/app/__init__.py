"""Command layer: Typer commands and terminal rendering (the only place that exits or prints)."""
