"""Command-line entrypoints of the stage jobs, one module per job kind (``curate``, ``train``).

Each is a thin shell over ``factory.jobs.run_job``: ``python -m ray_jobs.train request.json``
(or ``ray job submit -- python -m ray_jobs.train request.json``) runs one stage from a request
file written by ``factory.runner``. The library never imports this package.
"""
