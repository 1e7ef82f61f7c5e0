"""connectors.sources."""
