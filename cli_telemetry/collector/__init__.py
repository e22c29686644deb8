"""The collector: the tool author's own endpoint (``pip install click-telemetry[collector]``).

An ASGI app (Starlette, served by uvicorn) that accepts the wire format of the uploader,
validates each event against schema version 1 on its own (the answer names those it
refuses), and stores a batch's valid events in one transaction in SQLite (the default, WAL)
or PostgreSQL through SQLAlchemy Core. Nothing here is imported
by a running CLI or by the uploader.
"""
