"""Twitchcrement's shared module: record schemas and codec, configuration, logging, Spark session, JVM jars."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
