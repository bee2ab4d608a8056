"""asyncdex.messages."""
