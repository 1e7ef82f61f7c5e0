"""File import: vibration recordings, image folders, CMMS work-order exports and fault labels, as input events
into the Kafka input topics or a recording directory (``fusewatch import``, docs/import.md).

Readers (:mod:`.vibration`, :mod:`.images`, :mod:`.logs`, :mod:`.labels`) stream events with bounded memory and
report bad rows to a :class:`~connectors.ingest.files.problems.ProblemReport`; :func:`.pipeline.run_import`
puts them (through an optional transform) in event-time order into a target of :mod:`.targets`.
"""
