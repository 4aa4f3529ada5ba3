"""The search: schedule, regularizer, pruning, derivation and the loop that runs them."""
