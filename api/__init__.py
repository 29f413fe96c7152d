"""The HTTP API (FastAPI). Never imports torch, diffusers, the worker or the engine."""
