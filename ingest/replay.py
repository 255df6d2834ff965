"""Feed recorded (or generated) chat into a sink, keeping its timing at a speed factor, optionally re-stamped to now."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from tqdm import tqdm

from twitchcrement.records import ChatMessage

log = logging.getLogger(__name__)


class Sink(Protocol):
    def offer(self, message: ChatMessage, block: bool = False) -> bool: ...


def paced(
    messages: Iterable[ChatMessage],
    speed: float | None,
    restamp: bool,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[ChatMessage]:
    """Yield messages at their recorded pace divided by `speed` (None: as fast as possible).

    With `restamp`, event times are shifted so the first message is "now" and the gaps are divided by `speed`,
    so windows downstream see live-looking chat; received_at is the moment each message is yielded.
    """
    first_ts: int | None = None
    started = clock()
    for message in messages:
        if first_ts is None:
            first_ts = message.sent_ts
        offset_s = (message.sent_ts - first_ts) / 1000.0
        if speed is not None:
            offset_s /= speed
            wait = started + offset_s - clock()
            if wait > 0:
                sleep(wait)
        if restamp:
            now_ms = int(clock() * 1000)
            stamped = (
                int((started + offset_s) * 1000)
                if speed is not None
                else int(started * 1000) + (message.sent_ts - first_ts)
            )
            message = dataclasses.replace(message, sent_ts=stamped, received_at=now_ms)
        yield message


def run(
    messages: Iterable[ChatMessage],
    sink: Sink,
    *,
    speed: float | None = None,
    restamp: bool = False,
    total: int | None = None,
    label: str = "replay",
    stop: Callable[[], bool] = lambda: False,
    progress: bool = True,
    log_every_s: float = 10.0,
) -> int:
    """Replay into the sink with a progress bar and periodic rate logs. Returns how many messages were offered."""
    count = 0
    started = last_log = time.monotonic()
    bar = tqdm(total=total, unit="msg", desc=label, disable=not progress, mininterval=1.0, smoothing=0.1)
    try:
        for message in paced(messages, speed, restamp):
            if stop():
                break
            sink.offer(message, block=True)  # a recording can wait for Kafka; nothing is dropped
            count += 1
            bar.update(1)
            now = time.monotonic()
            if now - last_log >= log_every_s:
                log.info(
                    "replaying",
                    extra={"source": label, "messages": count, "rate_per_s": round(count / (now - started), 1)},
                )
                last_log = now
    finally:
        bar.close()
    elapsed = max(time.monotonic() - started, 1e-9)
    log.info(
        "replay finished",
        extra={
            "source": label,
            "messages": count,
            "seconds": round(elapsed, 1),
            "rate_per_s": round(count / elapsed, 1),
        },
    )
    return count
