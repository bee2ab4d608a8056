"""asyncdex.cli."""
