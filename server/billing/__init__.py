"""Hourly billing: rate cards, charges, invoices, payments, balances and exports.

Pure domain modules (``rates``, ``charges``, ``tax``, ``numbering``, ``money``, ``errors``)
have no I/O; ``models``, ``service``, ``export``, ``api`` and ``cli`` add the database,
HTTP and command line around them.
"""
