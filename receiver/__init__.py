"""exchange-watch alert receiver: Alertmanager webhooks in, diagnosed chat notifications out.

Entry points: :func:`receiver.app.create_app` (the FastAPI application) and
:func:`receiver.cli.main` (the ``alert-receiver`` command).
"""
