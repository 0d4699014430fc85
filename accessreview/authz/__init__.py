"""The authorization engine: Polar policies (oso) over an in-memory index of the directory."""
