"""Stream processing: event-time alignment, the scoring pipeline, alert policy and the runners."""
