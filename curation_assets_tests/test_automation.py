import json
from datetime import datetime, timezone

from dagster import DagsterInstance, build_schedule_context, build_sensor_context

from curation_assets.config import load_config
from curation_assets.definitions import build_definitions


def test_sensor_requests_a_run_once_per_change(small_config, data_root):
    defs = build_definitions(load_config(small_config))
    sensor = defs.resolve_sensor_def("raw_files_sensor")
    with DagsterInstance.ephemeral() as instance:
        first = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))
        assert not first.run_requests
        raw = data_root / "raw/text"
        raw.mkdir(parents=True)
        (raw / "a.txt").write_text("one document\nanother document\n")
        second = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs))
        assert [r.partition_key for r in second.run_requests] == ["text"]
        third = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=second.cursor, definitions=defs))
        assert not third.run_requests  # nothing runs twice
        (raw / "a.txt").write_text("one document\nanother document\na third one\n")
        fourth = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=third.cursor, definitions=defs))
        assert [r.partition_key for r in fourth.run_requests] == ["text"]
        assert fourth.run_requests[0].run_key != second.run_requests[0].run_key
        assert set(json.loads(fourth.cursor)) == {"text"}


def test_daily_schedule_refreshes_benchmarks_of_every_modality(small_config):
    defs = build_definitions(load_config(small_config))
    schedule = defs.resolve_schedule_def("daily_benchmarks")
    assert schedule.cron_schedule == "0 3 * * *"
    job = defs.resolve_job_def(schedule.job_name)
    assert [k.to_user_string() for k in job.asset_layer.executable_asset_keys] == ["benchmark_scores"]
    with DagsterInstance.ephemeral() as instance:
        data = schedule.evaluate_tick(build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 25, 3, tzinfo=timezone.utc),
            repository_def=defs.get_repository_def()))
    assert sorted(r.partition_key for r in data.run_requests) == ["image", "satellite", "simulated", "text"]
    assert data.run_requests[0].run_key.endswith("2026-11-25")
