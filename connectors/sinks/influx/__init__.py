"""InfluxDB sinks: scores, features and alerts as deterministic points, over the v1 and v2 write APIs."""
