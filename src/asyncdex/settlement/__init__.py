"""asyncdex.settlement."""
