"""How steps run, chosen by run config: in-process (default), multiprocess, or Celery workers (production profile).

    execution: {config: {in_process: {}}}                       # default: one process, torch imported once
    execution: {config: {multiprocess: {max_concurrent: 2}}}    # a process per step
    execution: {config: {celery: {broker: "redis://127.0.0.1:6379/0", backend: "redis://127.0.0.1:6379/1"}}}

Every step that writes the warehouse is in the `duckdb_warehouse` pool (limit 1 in the instance config), so the
warehouse keeps one writer whichever executor runs the steps. Celery needs the optional `production` extra
(dagster-celery) and a persistent instance (deploy/dagster-production.yaml); see README, "Scaling out".

Before any step runs, pool slots still held by runs that were killed outright are freed (`release_dead_runs`):
a killed run never releases them itself, and the next refresh would wait for them forever.
"""

import os
import socket
from collections.abc import Iterator

import psutil
from dagster import (
    DagsterEvent,
    DagsterInstance,
    DagsterRun,
    Executor,
    ExecutorDefinition,
    Field,
    InitExecutorContext,
    Selector,
    executor,
    in_process_executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)

HOST_TAG, PID_TAG = "lmrec/host", "lmrec/pid"


def _available() -> dict[str, ExecutorDefinition]:
    choices = {"in_process": in_process_executor, "multiprocess": multiprocess_executor}
    try:
        from dagster_celery import celery_executor
    except ImportError:  # the production extra is not installed: Celery is simply not offered
        return choices
    return choices | {"celery": celery_executor}


EXECUTORS = _available()


@executor(
    name="lmrec_executor",
    config_schema=Field(
        Selector({name: definition.config_schema.as_field() for name, definition in EXECUTORS.items()}),
        default_value={"in_process": {}},
    ),
    requirements=lambda config: [] if "in_process" in config else multiple_process_executor_requirements(),
)
def lmrec_executor(init_context: InitExecutorContext):
    """Build the chosen executor with its own part of the config."""
    ((name, config),) = init_context.executor_config.items()
    chosen = EXECUTORS[name]
    return _ReleasingDeadRuns(chosen.executor_creation_fn(
        InitExecutorContext(job=init_context.job, executor_def=chosen, executor_config=config, instance=init_context.instance)
    ))


class _ReleasingDeadRuns(Executor):
    """The chosen executor, run after marking this run's process and freeing the slots of dead runs."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner

    def __getattr__(self, name: str):  # executor-specific attributes, e.g. Celery's app_args, come from the inner one
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def retries(self):
        return self.inner.retries

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        instance, run = plan_context.instance, plan_context.dagster_run
        instance.add_run_tags(run.run_id, {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())})
        for dead in release_dead_runs(instance, run.run_id):
            plan_context.log.warning(f"run {dead} was killed without reporting its end: marked failed, pool slots freed")
        yield from self.inner.execute(plan_context, execution_plan)


def release_dead_runs(instance: DagsterInstance, current_run_id: str) -> list[str]:
    """Free the pool slots of runs that can no longer release them: finished runs, and runs of this host whose
    process is gone (SIGKILL, out of memory), which are also marked failed. Runs of other hosts are left to the
    daemon's run monitoring. Returns the ids of the dead runs."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    dead = []
    for run_id in storage.get_concurrency_run_ids() - {current_run_id}:
        record = instance.get_run_record_by_id(run_id)
        if record is not None and not record.dagster_run.is_finished:
            if not _process_gone(record.dagster_run, record.start_time or record.create_timestamp.timestamp()):
                continue
            instance.report_run_failed(record.dagster_run, "The run's process is gone (killed); its pool slots were freed.")
            dead.append(run_id)
        storage.free_concurrency_slots_for_run(run_id)
    return dead


def _process_gone(run: DagsterRun, started_at: float) -> bool:
    if run.tags.get(HOST_TAG) != socket.gethostname() or not run.tags.get(PID_TAG, "").isdigit():
        return False
    try:
        process = psutil.Process(int(run.tags[PID_TAG]))
        # A live process with this pid that started after the run is a reused pid, not the run's process.
        return process.status() == psutil.STATUS_ZOMBIE or process.create_time() > started_at + 1
    except psutil.NoSuchProcess:
        return True
