"""Authentication: passwords, tokens, the permission policy, log-in throttling."""
