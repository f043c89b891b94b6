"""Command lines that run the library directly: no Prefect, no Dask, no API server.

``tgp plan``, ``tgp members`` and ``tgp fit`` start in about a second because they import only
:mod:`tgpcore` (and write nothing but their products). Asked to ``--record`` the run, they hand
over to the Prefect flow of the same stage, which records it in the run database.
"""
