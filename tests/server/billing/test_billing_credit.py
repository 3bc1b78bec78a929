import pytest

from server.billing.credit import CreditPolicy, available_credit, credit_blocked


@pytest.mark.parametrize(
    "owed, policy, blocked",
    [
        (10**9, CreditPolicy(), False),  # post-paid without limit: never
        (0, CreditPolicy(limit=0), False),
        (1, CreditPolicy(limit=0), True),
        (49_999, CreditPolicy(limit=50_000), False),
        (50_000, CreditPolicy(limit=50_000), True),  # limit reached
        (-5_000, CreditPolicy(prepaid=True), False),  # 5,000 of credit left
        (0, CreditPolicy(prepaid=True), True),  # credit used up
        (2_000, CreditPolicy(prepaid=True, limit=5_000), False),  # within the overdraft
        (5_000, CreditPolicy(prepaid=True, limit=5_000), True),
    ],
)
def test_credit_blocked(owed, policy, blocked):
    assert credit_blocked(owed, policy) is blocked


def test_available_credit():
    assert available_credit(100, CreditPolicy()) is None
    assert available_credit(-5_000, CreditPolicy(prepaid=True)) == 5_000
    assert available_credit(60_000, CreditPolicy(limit=50_000)) == 0
