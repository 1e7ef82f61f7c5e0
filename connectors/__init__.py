"""Edges of fusewatch: the simulator, Kafka, InfluxDB and SQLite sinks, webhooks, reports and data sets."""
