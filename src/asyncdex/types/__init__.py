"""asyncdex.types."""
