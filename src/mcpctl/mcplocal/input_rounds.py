"""Era translation: a 2026-07-28 caller's request whose upstream asks the client mid-call (DESIGN §5).

An upstream on mcpd's 2025-11-25 connection (a stdio server, a legacy HTTP server) asks for sampling,
elicitation or roots with a server-to-client request while it works on a call. A 2026-07-28 caller
has no back channel for that: the spec's answer is an `input_required` result (`inputRequests`,
`requestState`) and a retry of the same request carrying `inputResponses` and the `requestState`.

So the call runs in a task of its own, detached from the HTTP request that started it; when its
upstream asks, the caller's request is answered `input_required` (asks that arrive together go in one
round) and the call is parked, its upstream request kept waiting. The retry hands the answers to the
waiting asks and waits for what comes next: further asks (another round, with a fresh `requestState`)
or the final result. Asks a retry leaves unanswered are asked again.

Bounds: a parked call waits at most `wait_seconds` for its retry (then its asks get an error
answer and the call is cancelled upstream); each token may park `max_per_token` calls and everyone
together `max_total` (past that the request is answered with an error and its call cancelled).

`requestState` is a random id naming state that stays in this process, so it cannot be forged; it is
bound to the token that started the call and to the request (method and name or URI). A state of
another token, an unknown, expired or tampered one is refused with -32602. The parked calls sit
behind `InputWaits`, the one place that knows where they live (issue 14 routes a retry to the
replica that holds its call). A `requestState` without this module's prefix is the upstream's own
(the 2026-07-28 pass-through) and is left alone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CreateMessageResult, ElicitResult, ListRootsResult
from pydantic import BaseModel, ValidationError

from mcpctl.core import asks
from mcpctl.mcplocal.client_capabilities import declares, missing_capability_error, required_capability
from mcpctl.mcplocal.ports import Message, Notify, Relay

logger = logging.getLogger(__name__)

STATE_PREFIX = "mcplocal-input."
# After the first ask of a round, how long to wait for more asks the upstream sends at the same time,
# so that they travel in one input_required result.
ASK_SETTLE_SECONDS = 0.02
TOO_MANY_WAITING = -32000
# A call whose caller will not take its result (refused, expired) is cancelled upstream if it has not
# ended this long after its requests to the client were answered with an error. Ending on its own is
# kinder to a shared instance: a cancelled request is never answered, so mcpd cannot tell for a
# while whether it still runs (connection.py, ABANDONED_SECONDS).
ENDING_GRACE_SECONDS = 5.0

_ANSWER_MODELS: dict[str, type[BaseModel]] = {
    "sampling/createMessage": CreateMessageResult,
    "elicitation/create": ElicitResult,
    "roots/list": ListRootsResult,
}
_KEY_NAMES = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}


@dataclass(frozen=True)
class InputRoundsSettings:
    wait_seconds: float = 60.0
    max_per_token: int = 16
    max_total: int = 1000
    ending_grace_seconds: float = ENDING_GRACE_SECONDS


@dataclass
class _Ask:
    key: str
    message: Message  # {"method", "params"} as the upstream asked
    answer: asyncio.Future[Message]


@dataclass
class PendingCall:
    """One call of a 2026-07-28 caller, from its first request to its final answer."""

    token_sha: str
    request: tuple[str, str]  # (method, name or URI): a retry must be the same request
    capabilities: Any  # what the current request declared
    notify: Notify | None  # the current request's stream (progress, log lines)
    progress_token: Any = None  # the current request's own (a retry brings a new one)
    grace: float = ENDING_GRACE_SECONDS
    task: asyncio.Task[dict[str, Any]] | None = None
    asks: dict[str, _Ask] = field(default_factory=dict)
    failure: MCPError | None = None
    ended: bool = False
    waiter: asyncio.Future[None] | None = None  # the request waiting for what the call does next
    asked: int = 0  # how many requests the upstream sent (numbers the keys)

    def wake(self) -> None:
        """Something changed (an ask came, the call ended): the request waiting on it looks."""
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def outstanding(self) -> dict[str, _Ask]:
        return {key: ask for key, ask in self.asks.items() if not ask.answer.done()}

    def fail(self, error: MCPError) -> None:
        """End the call with `error` for its caller."""
        if self.failure is None:
            self.failure = error
        self.end("the call ended", self.grace)

    def end(self, reason: str, grace: float) -> None:
        """Nobody will take this call's result: its upstream's requests get an error answer (on
        which a server ends its call itself) and a call still running `grace` seconds later is
        cancelled upstream (`notifications/cancelled`)."""
        self.ended = True
        for ask in self.outstanding().values():
            ask.answer.set_result({"error": {"code": INTERNAL_ERROR, "message": reason}})
        task = self.task
        if task is not None and not task.done():
            if grace <= 0:
                task.cancel()
            else:
                asyncio.get_running_loop().call_later(grace, task.cancel)
        self.wake()

    async def ask(self, message: Message) -> Message:
        """The relay the upstream's requests reach: parked until the caller's retry answers."""
        method = str(message.get("method"))
        if self.ended:
            return {"error": {"code": INTERNAL_ERROR, "message": "the caller's request has ended"}}
        required = required_capability(message)
        if required is None:
            return {"error": {"code": -32601, "message": f"{method} is not relayed"}}
        how = asks.optional(message)
        if how == asks.AT_ONCE:  # the gateway's own question, not worth a round to this caller
            return asks.NOT_ASKED
        if not declares(self.capabilities, required):
            if how is not None:  # the gateway's own question never fails the request
                return asks.NOT_ASKED
            self.fail(MCPError(*missing_capability_error(method, required)))
            return {"error": {"code": INTERNAL_ERROR, "message": f"the client did not declare {method}"}}
        self.asked += 1
        key = f"{_KEY_NAMES[method]}-{self.asked}"
        ask = _Ask(key, {"method": method, "params": message.get("params") or {}}, asyncio.Future())
        self.asks[key] = ask
        self.wake()
        try:
            return await ask.answer
        finally:
            self.asks.pop(key, None)

    async def relay_notification(self, message: Message) -> None:
        """A notification of the call, on the current request's stream; progress under that
        request's own progress token (the first request's token is what the upstream knows)."""
        if self.notify is None:
            return
        params = message.get("params")
        if message.get("method") == "notifications/progress" and isinstance(params, dict):
            if self.progress_token is None:
                return  # the current request did not ask for progress
            message = {**message, "params": {**params, "progressToken": self.progress_token}}
        await self.notify(message)


class InputWaits:
    """The parked calls, by `requestState`, with their deadlines and the per-token and total caps."""

    def __init__(self, settings: InputRoundsSettings):
        self.settings = settings
        self._parked: dict[str, tuple[PendingCall, asyncio.TimerHandle]] = {}
        self._per_token: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._parked)

    def park(self, call: PendingCall) -> str:
        """A fresh `requestState` for a call waiting for its caller's retry; MCPError past a cap."""
        held = self._per_token.get(call.token_sha, 0)
        if held >= self.settings.max_per_token or len(self._parked) >= self.settings.max_total:
            which = "this token's" if held >= self.settings.max_per_token else "all"
            raise MCPError(
                TOO_MANY_WAITING,
                f"too many calls are waiting for their client's input ({which} "
                f"{held if which != 'all' else len(self._parked)}); answer or abandon one first",
            )
        state = STATE_PREFIX + secrets.token_urlsafe(24)
        timer = asyncio.get_running_loop().call_later(self.settings.wait_seconds, self._expire, state)
        self._parked[state] = (call, timer)
        self._per_token[call.token_sha] = held + 1
        return state

    def find(self, state: str, token_sha: str, request: tuple[str, str]) -> PendingCall:
        """The call `state` names, for this token's retry of the same request; MCPError otherwise."""
        entry = self._parked.get(state)
        if entry is None:
            raise MCPError(INVALID_PARAMS, "Invalid params: requestState is unknown or expired")
        call, _ = entry
        if call.token_sha != token_sha:
            raise MCPError(INVALID_PARAMS, "Invalid params: requestState is unknown or expired")
        if call.request != request:
            raise MCPError(INVALID_PARAMS, "Invalid params: requestState belongs to another request")
        return call

    def take(self, state: str) -> None:
        """The call's retry came: it is no longer waiting."""
        self._forget(state)

    def _forget(self, state: str) -> PendingCall | None:
        entry = self._parked.pop(state, None)
        if entry is None:
            return None
        call, timer = entry
        timer.cancel()
        left = self._per_token[call.token_sha] - 1
        if left:
            self._per_token[call.token_sha] = left
        else:
            del self._per_token[call.token_sha]
        return call

    def _expire(self, state: str) -> None:
        call = self._forget(state)
        if call is not None:
            logger.info("a call waited for its client's input for too long: its upstream is told no")
            call.end(f"the client did not answer within {self.settings.wait_seconds:g}s", call.grace)

    def close(self) -> None:
        for state in list(self._parked):
            call = self._forget(state)
            if call is not None:
                call.end("the endpoint is shutting down", grace=0)


Start = Callable[[Notify, Relay], Coroutine[Any, Any, dict[str, Any]]]


class InputRounds:
    """Runs a 2026-07-28 caller's interactive requests (tools/call, prompts/get, resources/read)."""

    def __init__(self, settings: InputRoundsSettings | None = None):
        self.waits = InputWaits(settings or InputRoundsSettings())

    async def run(
        self,
        token_sha: str,
        method: str,
        params: Mapping[str, Any],
        capabilities: Any,
        notify: Notify | None,
        start: Start,
    ) -> dict[str, Any]:
        """The answer to one request: the call's result, or `input_required` while its upstream
        waits for the client. A retry (a `requestState` of ours) resumes its call."""
        request = (method, str(params.get("uri") if method == "resources/read" else params.get("name")))
        state = params.get("requestState")
        if isinstance(state, str) and state.startswith(STATE_PREFIX):
            call = self.waits.find(state, token_sha, request)
            answers = _answers(call, params.get("inputResponses"))  # refused: the state stays good
            self.waits.take(state)
            call.capabilities, call.notify = capabilities, notify
            call.progress_token = _progress_token(params)
            for ask, answer in answers:
                if not ask.answer.done():
                    ask.answer.set_result(answer)
        else:
            grace = self.waits.settings.ending_grace_seconds
            call = PendingCall(token_sha, request, capabilities, notify, _progress_token(params), grace=grace)
            call.task = asyncio.get_running_loop().create_task(start(call.relay_notification, call.ask))
            call.task.add_done_callback(lambda task: _settled(call, task))
        try:
            return await self._next(call)
        except asyncio.CancelledError:  # the client went away mid-round: nobody will retry
            call.end("the client went away", grace=0)
            raise
        finally:
            call.notify = None

    async def _next(self, call: PendingCall) -> dict[str, Any]:
        task = call.task
        assert task is not None
        while True:
            if call.failure is not None:
                raise call.failure
            if task.done():
                return task.result()
            if call.outstanding():
                await asyncio.wait({task}, timeout=ASK_SETTLE_SECONDS)  # asks sent together join
                if call.failure is None and not task.done():
                    return self._round(call)
                continue
            call.waiter = asyncio.get_running_loop().create_future()
            await call.waiter

    def _round(self, call: PendingCall) -> dict[str, Any]:
        try:
            state = self.waits.park(call)
        except MCPError as exc:
            call.fail(exc)
            raise
        requests = {key: ask.message for key, ask in call.outstanding().items()}
        return {"resultType": "input_required", "inputRequests": requests, "requestState": state}

    def close(self) -> None:
        self.waits.close()


def _progress_token(params: Mapping[str, Any]) -> Any:
    meta = params.get("_meta")
    return meta.get("progressToken") if isinstance(meta, Mapping) else None


def _settled(call: PendingCall, task: asyncio.Task[dict[str, Any]]) -> None:
    call.wake()
    if not task.cancelled() and task.exception() is not None and call.ended:  # nobody takes it
        logger.debug("a call nobody waits for ended with %r", task.exception())


def _answers(call: PendingCall, responses: Any) -> list[tuple[_Ask, Message]]:
    """A retry's `inputResponses` matched to the asks they answer (unknown keys are ignored); an
    answer of the wrong shape refuses the retry."""
    if responses is None:
        return []
    if not isinstance(responses, Mapping):
        raise MCPError(INVALID_PARAMS, "Invalid params: inputResponses must be an object")
    answers: list[tuple[_Ask, Message]] = []
    for key, ask in call.outstanding().items():
        if key not in responses:
            continue
        method = str(ask.message["method"])
        try:
            _ANSWER_MODELS[method].model_validate(responses[key], by_name=False)
        except ValidationError:
            raise MCPError(
                INVALID_PARAMS, f"Invalid params: inputResponses[{key!r}] is not a valid {method} result"
            ) from None
        answers.append((ask, {"result": responses[key]}))
    return answers
