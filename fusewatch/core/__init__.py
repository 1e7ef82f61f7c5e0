"""fusewatch.core."""
