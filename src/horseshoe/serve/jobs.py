"""Jobs: a queue and one worker thread, so that one model call runs at a time, whoever asks.

The page posts a request and gets a job id at once; the worker runs the jobs in order, counting the
sampler's steps as they come; the page polls the job for its progress and, once done, its images. Only
the newest `Limits.kept` finished jobs are kept, and at most `Limits.queued` wait: memory stays flat
however long the server runs.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from horseshoe.serve.tasks import Task
from horseshoe.serve.uploads import Limits, RequestError, png_urls

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's progress and, once done, its result (images as PNG data URLs) or its error."""

    id: str
    task: Task
    state: str = "queued"  # queued, running, done, failed
    done: int = 0
    error: str | None = None
    images: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    seconds: float | None = None  # how long the model worked on it
    changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed")

    def update(self, **values) -> None:
        """Change the job's fields at once and wake the polls held open on it (see wait)."""
        with self.changed:
            for name, value in values.items():
                setattr(self, name, value)
            self.changed.notify_all()

    def wait(self, after: int, timeout: float) -> None:
        """Return once more than `after` steps are done or the job has ended, or after `timeout` seconds.

        A poll held open answers at the next step instead of a fixed interval later: progress shows as
        it happens, with one request per step at most.
        """
        with self.changed:
            self.changed.wait_for(lambda: self.done > after or self.ended, timeout)

    def view(self) -> dict:
        """What the page polls: the state, steps done of the total, and the images once there."""
        answer = {"id": self.id, "kind": self.task.kind, "state": self.state, "done": self.done,
                  "total": self.task.total}
        if self.state == "done":
            answer.update(images=self.images, inputs=self.inputs, seconds=self.seconds)
        if self.error is not None:
            answer["error"] = self.error
        return answer


class Worker:
    """The queue of jobs and the one thread that runs them."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.waiting: queue.Queue[Job | None] = queue.Queue(maxsize=limits.queued)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="horseshoe-serve-worker", daemon=True)
        self.thread.start()

    def submit(self, task: Task) -> Job:
        """Queue a task; a 503 RequestError when `Limits.queued` jobs already wait."""
        job = Job(id=secrets.token_hex(8), task=task)
        with self.lock:
            try:
                self.waiting.put_nowait(job)
            except queue.Full:
                raise RequestError(f"busy: {self.limits.queued} requests are waiting; try again shortly", 503) from None
            self.jobs[job.id] = job
            self._forget_old()
        return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def stop(self) -> None:
        """Drop the waiting jobs and end the worker thread once the job it runs is done (waiting 5 s at most)."""
        with self.lock:
            while not self.waiting.empty():
                job = self.waiting.get_nowait()
                if job is not None:
                    job.update(error="the server stopped", state="failed")
            self.waiting.put_nowait(None)
        self.thread.join(timeout=5)  # a long job still running is cut off with the process

    def _forget_old(self) -> None:
        """Drop the oldest finished jobs beyond Limits.kept (queued and running ones stay)."""
        finished = [job_id for job_id, job in self.jobs.items() if job.ended]
        for job_id in finished[: max(0, len(finished) - self.limits.kept)]:
            del self.jobs[job_id]

    def _loop(self) -> None:
        while (job := self.waiting.get()) is not None:
            job.update(state="running")
            try:
                self._run(job)
            except ValueError as error:  # a check inside the model code: the page shows it
                job.update(error=str(error), state="failed")
            except Exception as error:  # noqa: BLE001 - the server stays up; the log has the traceback
                log.exception("job %s (%s) failed", job.id, job.task.kind)
                job.update(error=f"internal error: {type(error).__name__}: {error}", state="failed")
            with self.lock:
                self._forget_old()

    def _run(self, job: Job) -> None:
        last, started = None, time.perf_counter()
        with torch.inference_mode():
            for record in job.task.work():
                job.update(done=min(job.done + 1, job.task.total))
                last = record
            if last is None:
                raise ValueError("the sampler took no step")
            images = png_urls(last.x_prev.float().cpu())
            inputs = [] if job.task.inputs is None else png_urls(job.task.inputs.float().cpu())
        job.update(images=images, inputs=inputs, done=job.task.total, seconds=round(time.perf_counter() - started, 3),
                   state="done")
