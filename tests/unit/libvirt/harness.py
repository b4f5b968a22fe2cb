"""Run the real Pulumi program (__main__.py) under Pulumi's mocks and record the resource graph.

Pulumi's MockMonitor answers every registration in-process; the recording subclass keeps each
request's type, name, parent, provider and explicit dependencies, which is what the graph tests
assert on. Resource outputs echo their inputs, so Output.all(...).apply(...) sees the declared values.
"""

from __future__ import annotations

import asyncio
import contextlib
import runpy
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor

ROOT = Path(__file__).resolve().parents[3]
TEST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnestlabunittestkeyonlyXXXXXXXXXXXXXXXXXXX nestlab@test"


@dataclass(frozen=True)
class Registration:
    """One RegisterResource request as the engine would have received it."""

    type: str
    name: str
    urn: str
    parent: str
    provider: str
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]


class EchoMocks(pulumi.runtime.Mocks):
    """New resources get an id derived from their name and outputs equal to their inputs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


class RecordingMonitor(MockMonitor):
    """A MockMonitor that remembers every registration with its dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = self.resources[response.urn].state if response.urn in self.resources else {}
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    provider=request.provider,
                    dependencies=tuple(request.dependencies),
                    inputs=dict(inputs),
                )
            )
        return response

    def of_type(self, type_: str) -> list[Registration]:
        """Registrations of one resource type, in declaration order."""
        return [r for r in self.registrations if r.type == type_]


@dataclass
class ProgramRun:
    """What one mocked run of the program left behind."""

    monitor: RecordingMonitor
    namespace: dict[str, Any] = field(default_factory=dict)
    """The program's globals (``lab``, ``settings``) when it completed."""


def stack_config(stack: str, **overrides: str) -> dict[str, str]:
    """A stack file's ``config`` map from stacks/, with ``nestlab:<key>`` overrides."""
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    config = {str(k): str(v) for k, v in document["config"].items()}
    config.update({f"nestlab:{key}": value for key, value in overrides.items()})
    return config


def _closing_thread_loop(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in a worker thread, then close the event loop Pulumi made for that thread (if any)."""
    try:
        return fn(*args, **kwargs)
    finally:
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:  # no loop was set in this thread
            loop = None
        if loop is not None and not loop.is_running():
            asyncio.set_event_loop(None)
            loop.close()


class LoopClosingExecutor(ThreadPoolExecutor):
    """Pulumi runs each RPC in the loop's default executor, and its _sync_await gives every worker
    thread an event loop it never closes; left to the garbage collector, those loops raise
    ResourceWarnings inside whichever test runs next. This executor closes them after each call."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(_closing_thread_loop, fn, *args, **kwargs)


@contextlib.contextmanager
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh current event loop for Pulumi's runtime; it and its worker threads' loops are closed after.

    Pulumi's mocks need a current loop in the main thread; code that ran asyncio.run() before (API
    tests, for one) leaves none set, so each program run gets its own.
    """
    loop = asyncio.new_event_loop()
    executor = LoopClosingExecutor()
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        executor.shutdown(wait=True)
        asyncio.set_event_loop(None)
        loop.close()


def prepare(config: dict[str, str], stack: str = "dev", secret_keys: list[str] | None = None) -> ProgramRun:
    """Install fresh mocks and ``config``; the program has not run yet."""
    mocks = EchoMocks()
    run = ProgramRun(RecordingMonitor(mocks))
    pulumi.runtime.set_mocks(mocks, project="nestlab", stack=stack, preview=False, monitor=run.monitor)
    pulumi.runtime.set_all_config(config, secret_keys or [])
    return run


def execute(run: ProgramRun, checks: Callable[[ProgramRun], Any] | None = None) -> ProgramRun:
    """Run __main__.py; ``checks`` may return an Output whose apply asserts, awaited before returning."""

    @pulumi.runtime.test
    def program() -> Any:
        run.namespace.update(runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))
        return checks(run) if checks is not None else None

    program()
    return run


def run_program(
    config: dict[str, str],
    stack: str = "dev",
    secret_keys: list[str] | None = None,
    checks: Callable[[ProgramRun], Any] | None = None,
) -> ProgramRun:
    """Prepare and execute in one step."""
    return execute(prepare(config, stack, secret_keys), checks)
