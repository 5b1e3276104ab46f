"""Run a stage's ordered policy list and fail closed.

Like a Postfix restriction list: the first refusal decides, a PERMIT ends the list
early, no opinion from anyone means accept. A rule that raises or does not answer in
time is a temporary refusal, ``451 4.3.0`` (RFC 3463 X.3.0 "other or undefined mail
system status"; RFC 5321 §4.2.5: the client retries later), never an acceptance.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Callable, Sequence

from policies.context import PolicyContext
from policies.verdict import Verdict, defer, permit

log = logging.getLogger("mailhub.policies")

PolicyList = Sequence[tuple[str, Callable[[PolicyContext], "Verdict | None"]]]


def _try_later() -> Verdict:
    return defer(
        451, "4.3.0",
        "Tạm thời có lỗi khi kiểm tra thư; vui lòng thử lại sau.",
        "Temporary problem checking the message, try later.",
    )


def _run(policies: PolicyList, ctx: PolicyContext, running: list[str]) -> Verdict:
    for name, policy in policies:
        running[0] = name
        try:
            verdict = policy(ctx)
            if verdict is not None and not isinstance(verdict, Verdict):
                raise TypeError(f"policy returned {type(verdict).__name__}, not a Verdict")
        except Exception:
            # Fail closed: a broken rule must not let mail through.
            log.exception("policy %s failed at stage %s; answering 451", name, ctx.stage)
            return _try_later().named(name)
        if verdict is not None:
            return verdict.named(name)  # a refusal decides; a PERMIT ends the list
    running[0] = ""
    return permit().named("")


def evaluate(policies: PolicyList, ctx: PolicyContext) -> Verdict:
    """Run ``policies`` in order on ``ctx`` and return the deciding verdict.

    The first verdict that is not None decides and carries its policy's name: a refusal
    (REJECT or DEFER) or a PERMIT that skips the rest. If all say None: ``permit()``
    named ``""``. A policy that raises (or returns something else than a Verdict)
    gives a 451 4.3.0 named after it, and the exception is logged.
    """
    return _run(policies, ctx, [""])


async def evaluate_async(policies: PolicyList, ctx: PolicyContext, timeout: float,
                         executor: Executor | None = None) -> Verdict:
    """:func:`evaluate` in a worker thread, so the event loop never waits on a rule.

    After ``timeout`` seconds the answer is a 451 4.3.0 named after the policy that
    was running then (``"timeout"`` if none had started, e.g. a busy executor). The
    thread cannot be stopped and finishes on its own; its verdict is dropped.
    """
    running = [""]
    loop = asyncio.get_running_loop()
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
        # cancellation of the calling task (CPython gh-86296), which left an SMTP
        # session whose client vanished mid-command looping forever.
        async with asyncio.timeout(timeout):
            return await loop.run_in_executor(executor, _run, policies, ctx, running)
    except TimeoutError:
        name = running[0] or "timeout"
        log.error("policy %s timed out after %.3gs at stage %s; answering 451",
                  name, timeout, ctx.stage)
        return _try_later().named(name)
    except Exception:  # e.g. the executor is shut down: still fail closed
        log.exception("policies could not run at stage %s; answering 451", ctx.stage)
        return _try_later().named(running[0] or "runner")
