"""Entrypoints of the heavy stages, run as Ray jobs (see factory.raycluster.submit).

Each module is thin: prepare the process (threads, environment), then call the stage function
named in the request through ``ray_jobs.entry.execute``. Every module is also runnable by hand,
e.g. ``ray job submit -- python -m ray_jobs.train request.json``.
"""
