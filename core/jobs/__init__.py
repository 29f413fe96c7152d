"""Jobs: tables, state machine, events and the API-side use cases (torch-free)."""
