"""fusewatch.backtest.run."""
