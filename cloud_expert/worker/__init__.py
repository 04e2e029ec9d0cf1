"""The report worker: Celery configuration (`celery_app`) and thin tasks (`tasks`)."""
