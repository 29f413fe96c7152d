"""Persistence: declarative base, column types and the session factory (torch-free)."""
