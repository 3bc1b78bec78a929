"""Telemetry to InfluxDB: events -> line protocol points -> durable spool -> InfluxDB.

Entry point for the server: :func:`server.telemetry.writer.make_writer`. See docs/telemetry.md.
"""
