"""The ledger: accounts and balanced, append-only entries (``services``), largest-remainder splits
(``allocation``), escrow holds and their release to owners (``escrow``), the invariants ``manage.py
ledger_check`` verifies (``checks``) and balances (``selectors``). It records money; it does not price usage
or decide who settles what.
"""
