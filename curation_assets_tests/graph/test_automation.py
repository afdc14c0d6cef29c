import json

from dagster import DagsterInstance, build_sensor_context

from curation_assets.config import load_config
from curation_assets.definitions import build_definitions


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def tick(sensor, defs, instance, cursor=None):
    return sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor, definitions=defs))


def test_raw_files_sensor_requests_a_run_once_per_change_and_says_why(small_config, data_root):
    defs = build_definitions(load_config(small_config))
    sensor = defs.resolve_sensor_def("raw_files_sensor")
    with DagsterInstance.ephemeral() as instance:
        first = tick(sensor, defs, instance)
        assert not first.run_requests
        raw = data_root / "raw/text"
        raw.mkdir(parents=True)
        (raw / ".hidden.txt").write_text("a hidden file is not a corpus file\n")
        assert not tick(sensor, defs, instance, first.cursor).run_requests  # the readers' rule: hidden = ignored
        (raw / "a.txt").write_text("one document\nanother document\n")
        second = tick(sensor, defs, instance, first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["text"]
        assert second.run_requests[0].tags["curation/reason"] == "files under raw/text/ changed"
        third = tick(sensor, defs, instance, second.cursor)
        assert not third.run_requests  # nothing runs twice
        (raw / "a.txt").write_text("one document\nanother document\na third one\n")
        fourth = tick(sensor, defs, instance, third.cursor)
        assert [r.partition_key for r in fourth.run_requests] == ["text"]
        assert fourth.run_requests[0].run_key != second.run_requests[0].run_key
        assert set(json.loads(fourth.cursor)) == {"text"}


def test_config_sensor_runs_exactly_the_assets_a_change_affects(small_config, data_root):
    defs = build_definitions(load_config(small_config))
    sensor = defs.resolve_sensor_def("config_sensor")
    with DagsterInstance.ephemeral() as instance:
        first = tick(sensor, defs, instance)
        assert not first.run_requests  # the first tick records the settings
        assert not tick(sensor, defs, instance, first.cursor).run_requests
        edit(small_config, "sampling: {fraction: 0.3, seed: 0}\n    benchmark: {seeds: [0], test_per_class: 2}",
             "sampling: {fraction: 0.25, seed: 0}\n    benchmark: {seeds: [0], test_per_class: 2}")
        second = tick(sensor, defs, instance, first.cursor)
        [request] = second.run_requests
        assert request.partition_key == "text" and request.tags["curation/reason"] == "curation.yaml changed: sampling"
        assert {k.to_user_string() for k in request.asset_selection} == {"balanced_subset", "benchmark_scores",
                                                                        "curated_dataset"}
        edit(small_config, "{n_clusters: 100, resampling_steps: 3, sample_size: 2}",
             "{n_clusters: 90, resampling_steps: 3, sample_size: 2}")
        [request] = tick(sensor, defs, instance, second.cursor).run_requests
        assert request.partition_key == "simulated"
        assert {k.to_user_string() for k in request.asset_selection} == {
            "clustering_level_2", "clustering_level_3", "balanced_subset", "benchmark_scores", "curated_dataset"}
