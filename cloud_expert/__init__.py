"""cloud_expert: ingest of escalations, report jobs (Celery), the clinicians' dashboard (FastAPI).

Nothing is imported here on purpose: the worker, the web app and the ingest service each pull in
only what they need (`cloud_expert.worker.celery_app.app` is the Celery app).
"""
