"""API keys and principals (torch-free)."""
