"""The detector's state between micro-batches: one ChannelDetector per channel, fed in Kafka offset order, and a
store that saves it with every micro-batch, so a restarted job resumes exactly where its last batch left it.

Why the state lives here, with the driver, and not in a Spark state store: what a channel emits must not depend on
how a backlog is cut into micro-batches, and a channel that falls silent must still have its windows closed.
Both need facts that only the driver has: the order of the messages across micro-batches, and whether each Kafka
partition has been read to its end (a channel is only "silent" when everything sent to it has been read, never
merely because its partition is behind the others). Spark ML still computes the MinHash signatures on the
executors; the per-channel work done here is a few microseconds per message (bench/results/profile.md).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from jobs.detection import ChannelDetector, Settings
from twitchcrement.errors import UserError

log = logging.getLogger(__name__)

EVICT_AFTER_MS = 3_600_000  # a channel with nothing open, silent this long, is forgotten (bounded state)
SNAPSHOTS_KEPT = 3
# Raised whenever what a snapshot holds changes shape (2: every text keeps each user's first and last time), so a
# job started on an older release's checkpoint says so instead of failing on the first window it closes.
STATE_LAYOUT = 2


class StateLayoutChanged(UserError, RuntimeError):
    """The checkpoint's detector state was written by a release whose state has another shape."""


@dataclass
class DetectorState:
    """Every channel's detector, and what the driver knows about Kafka: the next offset to read per partition
    (`read_through`) and the partition and processing time of each channel's last message."""

    detectors: dict[str, ChannelDetector] = field(default_factory=dict)
    last_message_at: dict[str, int] = field(default_factory=dict)  # processing time (ms) of the last message
    partition_of: dict[str, int] = field(default_factory=dict)
    read_through: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    batch_id: int = -1  # the last micro-batch applied
    layout: int = STATE_LAYOUT
    # History rows of the batches up to batch_id that were not known to be in Cassandra when the snapshot was
    # taken: a restart writes them again (jobs.micro_batch). Snapshots of earlier releases lack it and need none.
    unwritten_history: list[dict[str, Any]] = field(default_factory=list)

    def apply(
        self, batch: pd.DataFrame, now_ms: int, partition_ends: dict[int, int] | None, settings: Settings
    ) -> tuple[list[dict[str, Any]], int]:
        """Feed one micro-batch (columns channel, sent_ts, user_login, text, norm, signature, partition, offset)
        to the channels in offset order; then close the channels that are silent (see below; `partition_ends`:
        what Kafka reported before this batch, None: not known, close nothing).
        Returns the emitted rows (events and topic updates) and the number of late messages dropped."""
        rows: list[dict[str, Any]] = []
        if len(batch):
            batch = batch.sort_values(["partition", "offset"], kind="stable")
            for partition, offset in batch.groupby("partition", sort=False)["offset"].max().items():
                self.read_through[int(partition)] = max(self.read_through.get(int(partition), 0), int(offset) + 1)
            for channel, messages in batch.groupby("channel", sort=False):
                detector = self.detectors.get(channel)
                if detector is None:
                    detector = self.detectors[channel] = ChannelDetector(channel)
                for ts, user, text, norm, signature in zip(
                    messages["sent_ts"].tolist(),
                    messages["user_login"].tolist(),
                    messages["text"].tolist(),
                    messages["norm"].tolist(),
                    messages["signature"].tolist(),
                    strict=True,
                ):
                    detector.add(ts, user, text, norm, signature, settings)
                rows.extend(detector.take())
                self.last_message_at[channel] = now_ms
                self.partition_of[channel] = int(messages["partition"].iloc[-1])
        late = 0
        stream_clock = max((d.newest_ts for d in self.detectors.values()), default=0)
        for channel, detector in list(self.detectors.items()):
            late += detector.late_dropped
            detector.late_dropped = 0
            silent_ms = now_ms - self.last_message_at.get(channel, now_ms)
            # Silent, not merely delayed: nothing for the lag in processing time, everything sent to it read
            # (its partition is at the end Kafka reported), and the rest of the chat a lag further on in event
            # time (after an outage upstream, nobody's chat has moved on, and nothing closes).
            if (
                silent_ms < settings.channel_lag_ms
                or not self._read_to_end(channel, partition_ends)
                or stream_clock - detector.newest_ts < settings.channel_lag_ms
            ):
                continue
            rows.extend(detector.close_quiet(silent_ms, settings))
            if detector.is_empty() and silent_ms >= EVICT_AFTER_MS:
                del self.detectors[channel]
                self.last_message_at.pop(channel, None)
                self.partition_of.pop(channel, None)
        return rows, late

    def _read_to_end(self, channel: str, partition_ends: dict[int, int] | None) -> bool:
        if partition_ends is None:
            return False
        partition = self.partition_of.get(channel)
        return partition is None or self.read_through.get(partition, 0) >= partition_ends.get(partition, 0)

    def finish(self, settings: Settings) -> list[dict[str, Any]]:
        """The input is over (the end of an --available-now drain): every channel's open windows close."""
        rows: list[dict[str, Any]] = []
        for detector in self.detectors.values():
            rows.extend(detector.finish(settings))
        return rows

    def sizes(self) -> dict[str, int]:
        windows = [w for d in self.detectors.values() for w in d.windows.values()]
        return {
            "channels": len(self.detectors),
            "open_windows": len(windows),
            "open_texts": sum(len(w.texts) for w in windows),
            "topics": sum(len(d.topics) for d in self.detectors.values()),
        }


class StateStore:
    """The detector's files beside Spark's in the query's checkpoint: snapshots of the DetectorState
    (`detector-state/<batch id>`, the last few kept) and each batch's recorded facts
    (`detector-state/decisions/<batch id>`, see jobs.micro_batch). Local folders are written with plain file
    calls; any other checkpoint location through Hadoop's FileSystem (HDFS, S3A, ...), like Spark's own files."""

    def __init__(self, checkpoint: str, spark: Any = None):
        parsed = urlparse(checkpoint)
        self.location = checkpoint.rstrip("/")
        self.folder = Path(parsed.path) if parsed.scheme in ("", "file") else None  # None: through Hadoop
        self.spark = spark
        self._checked: tuple[int, DetectorState] | None = None  # the snapshot check_layout read, for its restore
        if self.folder is not None:
            (self.folder / "detector-state" / "decisions").mkdir(parents=True, exist_ok=True)

    @property
    def local(self) -> bool:
        return self.folder is not None

    # --- snapshots
    def save(self, state: DetectorState) -> int:
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        self._write(f"detector-state/{state.batch_id}", data, durable=True)
        for old in self.ids("detector-state")[:-SNAPSHOTS_KEPT]:
            self._delete(f"detector-state/{old}")
        return len(data)

    def newest_snapshot_bytes(self) -> int | None:
        """The size of the newest snapshot (local checkpoints only; None elsewhere or before the first)."""
        ids = self.ids("detector-state") if self.folder is not None else []
        return (self.folder / "detector-state" / str(ids[-1])).stat().st_size if self.folder and ids else None

    def load_before(self, batch_id: int) -> DetectorState:
        """The state after the newest saved batch before batch_id (a new state when there is none)."""
        earlier = [i for i in self.ids("detector-state") if i < batch_id]
        if not earlier:
            return DetectorState()
        state = self._load(earlier[-1])
        log.info("detector state restored", extra={"batch": state.batch_id, **state.sizes()})
        return state

    def check_layout(self) -> None:
        """Raise StateLayoutChanged when the newest snapshot has another layout than this release reads (checked
        before the query starts, so the job stops with one line instead of failing in its first batch). The
        snapshot read is kept for the first batch's restore, which wants the same one."""
        ids = self.ids("detector-state")
        if ids:
            self._checked = (ids[-1], self._load(ids[-1]))

    def _load(self, snapshot_id: int) -> DetectorState:
        checked, self._checked = self._checked, None
        if checked is not None and checked[0] == snapshot_id:
            return checked[1]
        state: DetectorState = pickle.loads(self._read(f"detector-state/{snapshot_id}"))
        self._check(state)
        return state

    def _check(self, state: DetectorState) -> None:
        layout = vars(state).get("layout", 1)  # not getattr: the class default would answer for an old snapshot
        if layout != STATE_LAYOUT:
            raise StateLayoutChanged(
                f"the detector state in {self.location} has layout {layout}, this release reads "
                f"layout {STATE_LAYOUT}: start with a new checkpoint (--checkpoint) over the retained chat "
                f"(docs/operations.md, Upgrading)"
            )

    # --- each batch's facts
    def decision(self, batch_id: int) -> dict[str, Any] | None:
        try:
            return json.loads(self._read(f"detector-state/decisions/{batch_id}"))
        except FileNotFoundError:
            return None

    def save_decision(self, batch_id: int, facts: dict[str, Any]) -> None:
        self._write(f"detector-state/decisions/{batch_id}", json.dumps(facts).encode(), durable=False)

    def drop_decision(self, batch_id: int) -> None:
        if batch_id >= 0:
            self._delete(f"detector-state/decisions/{batch_id}")

    def read_checkpoint_file(self, relative: str) -> str:
        """One of Spark's own checkpoint files (offsets/N, sources/0/0)."""
        return self._read(relative).decode("utf-8", errors="replace")

    # --- storage
    def ids(self, folder: str) -> list[int]:
        """The numbered files of a folder of the checkpoint (snapshots here, or Spark's commits), in order."""
        if self.folder is not None:
            names = [p.name for p in (self.folder / folder).iterdir()] if (self.folder / folder).exists() else []
        else:
            fs, path = self._hadoop(folder)
            names = [s.getPath().getName() for s in fs.listStatus(path)] if fs.exists(path) else []
        return sorted(int(n) for n in names if n.isdigit())

    def _read(self, relative: str) -> bytes:
        if self.folder is not None:
            return (self.folder / relative).read_bytes()
        fs, path = self._hadoop(relative)
        if not fs.exists(path):
            raise FileNotFoundError(f"{self.location}/{relative}")
        stream = fs.open(path)
        try:
            return bytes(self.spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def _write(self, relative: str, data: bytes, durable: bool) -> None:
        """Written whole or not at all: to a temporary name, then renamed."""
        head, _, name = relative.rpartition("/")
        temporary = f"{head}/.{name}.tmp"
        if self.folder is not None:
            with open(self.folder / temporary, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(self.folder / temporary, self.folder / relative)
            return
        fs, path = self._hadoop(temporary)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
        _, final = self._hadoop(relative)
        fs.delete(final, False)
        fs.rename(path, final)

    def _delete(self, relative: str) -> None:
        if self.folder is not None:
            (self.folder / relative).unlink(missing_ok=True)
        else:
            fs, path = self._hadoop(relative)
            fs.delete(path, False)

    def _hadoop(self, relative: str) -> tuple[Any, Any]:
        context = self.spark.sparkContext
        path = context._jvm.org.apache.hadoop.fs.Path(f"{self.location}/{relative}")
        return path.getFileSystem(context._jsc.hadoopConfiguration()), path
