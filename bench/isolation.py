"""The benchmarks' own keyspace and topics, so a bench never writes into the history a user reads (the configured
keyspace and topics); both are dropped when the bench ends, also on Ctrl-C or SIGTERM. The chat's BTTV, FFZ and
7TV emotes come from the providers' local stand-in with the synthetic world's sets, as in the tests."""

from __future__ import annotations

import logging
import shutil
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ingest.synth import THIRD_PARTY_SETS
from services.emote_providers import EmoteProviders
from services.schema import drop_topics, ensure_tables, ensure_topics
from twitchcrement.clients import cassandra_session, kafka_admin
from twitchcrement.config import Config, project_path

log = logging.getLogger(__name__)
DROP_KEYSPACE = "DROP KEYSPACE IF EXISTS {keyspace}"


class BenchSpace:
    """`with BenchSpace(config) as space:` gives `space.config` (its own keyspace, chat, spam and dead-letter
    topics) and `space.topic(name)` for more topics; everything is removed on the way out."""

    def __init__(self, base: Config, keep: bool = False, keyspace: str | None = None):
        self.run_id = uuid.uuid4().hex[:6]
        self.prefix = f"bench-{self.run_id}-"
        self.keep = keep  # leave the keyspace for the next run (bench.dashboard --keep)
        self.emote_providers = EmoteProviders(THIRD_PARTY_SETS)
        urls = self.emote_providers.urls()
        self.config = base.with_overrides(
            cassandra__keyspace=keyspace or f"twitchcrement_bench_{self.run_id}",
            kafka__chat_topic=self.name("chat"),
            kafka__spam_topic=self.name("spam"),
            kafka__deadletter_topic=self.name("dead"),
            emotes__bttv_url=urls["bttv"],
            emotes__ffz_url=urls["ffz"],
            emotes__seventv_url=urls["7tv"],
            emotes__cache_dir=f"var/bench-emotes-{self.run_id}",
        )
        self._previous_handler: Any = None

    def name(self, what: str) -> str:
        return f"{self.prefix}{what}-{uuid.uuid4().hex[:6]}"

    def topic(self, what: str) -> str:
        """A new topic of this bench run, created now."""
        topic = self.name(what)
        ensure_topics(self.config, [topic])
        return topic

    def __enter__(self) -> BenchSpace:
        def terminate(signum: int, _frame: Any) -> None:
            raise SystemExit(128 + signum)  # unwinds through __exit__, which cleans up

        self._previous_handler = signal.signal(signal.SIGTERM, terminate)
        ensure_tables(self.config)
        ensure_topics(
            self.config,
            [self.config.kafka.chat_topic, self.config.kafka.spam_topic, self.config.kafka.deadletter_topic],
        )
        return self

    def __exit__(self, *_: Any) -> None:
        signal.signal(signal.SIGTERM, self._previous_handler or signal.SIG_DFL)
        self.emote_providers.close()
        shutil.rmtree(project_path(self.config.emotes.cache_dir), ignore_errors=True)
        if self.keep:
            return
        try:
            admin = kafka_admin(self.config)
            try:
                ours = [t for t in admin.list_topics() if t.startswith(self.prefix)]
            finally:
                admin.close()
            drop_topics(self.config, ours)
            session = cassandra_session(self.config, keyspace=False)
            try:
                # the keyspace name cannot be bound; the config checks it is a plain CQL name
                session.execute(DROP_KEYSPACE.format(keyspace=self.config.cassandra.keyspace), timeout=120)
            finally:
                session.cluster.shutdown()
            log.warning(
                "bench keyspace and topics dropped",
                extra={"keyspace": self.config.cassandra.keyspace, "topics": len(ours)},
            )
        except Exception as exc:  # noqa: BLE001 - say what is left behind, in one line
            log.error(
                "could not drop the bench keyspace and topics", extra={"error": str(exc)[:300], "prefix": self.prefix}
            )


@contextmanager
def local_bench(app_name: str) -> Iterator[tuple[BenchSpace, Any]]:
    """A bench part run on its own (python -m bench.X): the local services up, a BenchSpace, and a local[2] Spark
    session on it, stopped and dropped on the way out."""
    import services
    from twitchcrement import config as configuration
    from twitchcrement import logs
    from twitchcrement.spark import session

    logs.setup("WARNING")
    base = configuration.load()
    services.up(base)
    with BenchSpace(base.with_overrides(spark__master="local[2]")) as space:
        spark = session(space.config, app_name=app_name)
        spark.sparkContext.setLogLevel("ERROR")
        try:
            yield space, spark
        finally:
            spark.stop()
