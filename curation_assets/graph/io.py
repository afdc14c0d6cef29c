"""How data moves between assets: lazy handles to what the store published, nothing else.

Assets write their own files through the store while they run (streamed, atomic, with a record written
last, so a crash resumes where it stopped). This IO manager then hands every downstream asset the
store's handle of an upstream output (a memory-mapped pool, a fitted tree, a published subset), by
asset name and modality partition, so the lineage in the UI is exactly the data flow in the code.
"""

from __future__ import annotations

from dagster import ConfigurableIOManager, InputContext, OutputContext

from curation_assets.store import Layout, open_artifact


class CurationIOManager(ConfigurableIOManager):
    """Loads an upstream asset's output as the store's handle (``store.open_artifact``)."""

    def handle_output(self, context: OutputContext, obj) -> None:
        """The asset published ``obj`` through the store already; check it is that asset's current record."""
        current = open_artifact(context.asset_key.path[-1], Layout(context.asset_partition_key))
        if getattr(obj, "fingerprint", None) != getattr(current, "fingerprint", None):
            raise RuntimeError(f"{context.asset_key.to_user_string()}: the returned artefact is not the one "
                               "the store holds for this partition")

    def load_input(self, context: InputContext):
        return open_artifact(context.upstream_output.asset_key.path[-1], Layout(context.asset_partition_key))
