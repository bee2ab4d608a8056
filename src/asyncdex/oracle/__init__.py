"""asyncdex.oracle."""
