"""asyncdex.client."""
