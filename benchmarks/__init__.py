"""`make bench`: figures measured side by side with their reference on the same machine.

Run ``python -m benchmarks [--quick] [--only NAME ...]``; see docs/benchmarks.md."""
