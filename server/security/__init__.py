"""Security: users and roles (OAuth2 password flow, short-lived JWTs), the per-route access
policy, the append-only audit log, per-device MQTT credentials and ACLs, badge-clone alerts.

- :mod:`.policy`: the one rule table (method, route path) -> roles;
- :mod:`.auth`: who is calling (admin token, user token, gateway key);
- :mod:`.audit`: :func:`audit` and the append-only guard;
- :mod:`.broker_config`: Mosquitto password file, ACL and config for provisioned devices;
- :mod:`.clones`: one badge active on two machines at once.
"""
