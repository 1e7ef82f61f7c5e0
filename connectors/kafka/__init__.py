"""Kafka edges of fusewatch: settings (``settings``), topic administration (``admin``), the input-event
producer (``producer``), a bounded reader (``consumer``) and the simulator feed (``simulate``)."""
