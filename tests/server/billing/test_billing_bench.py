from server.billing.bench import ARTISANS, bill_synthetic


def test_bench_bills_every_synthetic_session():
    _seconds, invoices, lines = bill_synthetic(300)
    assert lines == 300
    assert 0 < invoices <= ARTISANS
