"""Tiny operators run as subprocesses by the e2e suite (``kopf run e2e/operators/<file>.py``)."""
