"""Celery GPU workers: the app, the job task, the lease heartbeat and the reaper."""
