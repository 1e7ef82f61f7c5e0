"""Kafka edges of fusewatch: topic administration (``admin``), the input-event producer (``producer``), readers
(``consumer``: bounded, following, time ranges), history from Kafka and ``open_history`` (``history``), the one
loop that publishes a source at plant speed (``publish``, with ``pacing``) behind ``simulate`` and ``replay``,
``record`` (topics into a recording) and the sink agent (``sink_agent``)."""
