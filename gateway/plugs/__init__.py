"""Off-the-shelf metering plugs (Tasmota, Shelly Gen1, Shelly Gen2+) as machine sensors and
power interlocks. See docs/plugs.md.

- :mod:`.mapping`: the plug mapping, declared as data (a YAML or JSON file, CRP_PLUGS_FILE);
- :mod:`.topics`: which topics belong to which plug, and the subscriptions (data);
- :mod:`.converters`: pure ``(topic, payload) -> [PlugReading]`` per firmware;
- :mod:`.live`: pure per-plug state: readings -> the contract's records with a synthetic
  ``(plug, boot, seq)`` identity;
- :mod:`.interlock`: pure reconciliation of the plug's relay with the machine's session;
- :mod:`.commands`: the firmware's ON/OFF command for a plug;
- :mod:`.bridge`: the glue the gateway service calls (keeps the states, persists them).
"""
