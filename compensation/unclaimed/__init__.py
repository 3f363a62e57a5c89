"""The public notice of unclaimed money and the hold policy (README "Unclaimed money")."""
