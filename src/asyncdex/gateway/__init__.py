"""asyncdex.gateway."""
