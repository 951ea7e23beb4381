"""API keys and their credits (a later issue adds accounts, groups, pricing, ledger and limits)."""
