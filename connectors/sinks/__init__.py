"""connectors.sinks."""
