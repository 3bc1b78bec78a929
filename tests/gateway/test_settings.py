from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings, InsecureDefaults


@pytest.mark.parametrize("password,key", [
    (None, None),  # demo defaults
    ("unsafe-placeholder-password", "x" * 32),
    ("short", "y" * 32),
])
def test_refuses_default_or_weak_secrets_outside_demo(password, key) -> None:
    kw = {k: v for k, v in (("mqtt_password", password), ("gateway_api_key", key)) if v is not None}
    with pytest.raises(InsecureDefaults):
        GatewaySettings(_env_file=None, demo_mode=False, **kw).check_secrets()


def test_accepts_real_secrets_and_demo_mode() -> None:
    GatewaySettings(_env_file=None, demo_mode=False, mqtt_password="p" * 20, gateway_api_key="k" * 32).check_secrets()
    GatewaySettings(_env_file=None, demo_mode=True).check_secrets()
