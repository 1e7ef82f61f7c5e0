"""Grafana: the dashboards generated as code (``dashboards``) and their provisioning over the HTTP API (``push``)."""
