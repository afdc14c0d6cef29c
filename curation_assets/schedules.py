"""A daily schedule that refreshes ``benchmark_scores`` for every modality."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from curation_assets.assets._common import current_config


def build_daily_benchmarks_schedule(job):
    @schedule(job=job, cron_schedule="0 3 * * *", default_status=DefaultScheduleStatus.RUNNING,
              description="Every day at 03:00: refresh benchmark_scores of every modality partition.")
    def daily_benchmarks(context: ScheduleEvaluationContext):
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return [RunRequest(run_key=f"benchmarks:{modality}:{day}", partition_key=modality)
                for modality in current_config().modalities]

    return daily_benchmarks
