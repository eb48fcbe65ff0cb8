"""The card's acceptance tests and their thresholds, shipped with the plugin.

In a checkout, ``pytest -m accuracy`` collects them (pytest.ini's testpaths); after
``pip install``, ``pytest --pyargs res2net_validate.acceptance --embedded`` runs them from any
folder.  The default ``--thresholds`` files are the repository's top-level ``thresholds/*.yaml``, shipped
inside the package as ``res2net_validate/_thresholds/`` (see ``thresholds.PACKAGED``).
"""
