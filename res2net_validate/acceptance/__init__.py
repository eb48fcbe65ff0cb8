"""The card's acceptance tests and their thresholds, shipped with the plugin.

In a checkout, ``pytest -m accuracy`` collects them (pytest.ini's testpaths); after
``pip install``, ``pytest --pyargs res2net_validate.acceptance --embedded`` runs them from any
folder.  ``thresholds/*.yaml`` are the default ``--thresholds`` files (package data).
"""
