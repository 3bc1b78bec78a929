"""Maintenance: plans (run hours, calendar days, conditions, fault codes), alerts with a
lifecycle, technicians' notifications, work orders, lock-out. See docs/maintenance.md.

Hooks for the rest of the server (imported lazily so the core never needs this package):

- ingestion: :func:`server.maintenance.evaluation.on_events` after new events are stored;
- snapshot: :func:`server.maintenance.plans.conditions_for` for each machine;
- background loop: :func:`server.maintenance.evaluation.evaluate` and
  :func:`server.maintenance.notify.dispatch`;
- API: ``server.maintenance.api.router``; CLI: ``server.maintenance.cli.app``.
"""
