"""Retraining a derived architecture from scratch."""
