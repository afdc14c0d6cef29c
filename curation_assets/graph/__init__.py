"""The Dagster asset graph: one module per asset family, plus the IO manager, steps, checks and automation.

Asset modules import ``core``, ``config``, ``store`` and the helpers here (``steps``, ``checks``,
``plots``), never each other: data moves between assets only as the store's handles, through
:class:`~curation_assets.graph.io.CurationIOManager`.
"""
