"""Grafana dashboards: check every panel query against the real databases
(:mod:`server.dashboards.check`), upload them to a Grafana (:mod:`server.dashboards.push`), the
``crp dashboards`` commands (:mod:`server.dashboards.cli`) and the availability endpoint
(:mod:`server.dashboards.api`). The dashboards themselves are JSON files under ``dashboards/``;
see docs/dashboards.md."""
