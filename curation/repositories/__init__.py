"""Queries. Repositories read and write through the session they are given and never commit."""
