"""Simulated machine nodes: a workshop described as data, deterministic scenarios, and a
runner that plays them against an MQTT broker. Imports only crp_common (the contract)."""
