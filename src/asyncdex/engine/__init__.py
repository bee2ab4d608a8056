"""asyncdex.engine."""
