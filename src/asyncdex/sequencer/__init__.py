"""asyncdex.sequencer."""
