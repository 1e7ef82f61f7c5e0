"""fusewatch.evaluation."""
