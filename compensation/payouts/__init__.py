"""Payout profiles: who is paid, where (encrypted bank details), and the tax status that decides withholding."""
