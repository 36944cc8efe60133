"""The `lerobot-prune` command line: `cli` dispatches to one module per command, plus their helpers."""
