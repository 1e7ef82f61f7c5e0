"""streams.runners."""
