"""Where the JVM artifacts are: `make jars` resolves each jvm/NAME.pom.xml with Maven into .cache/jars/NAME.classpath
and compiles jvm/src into UDF_JAR."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from twitchcrement import PROJECT_ROOT
from twitchcrement.errors import UserError

JARS_DIR = PROJECT_ROOT / ".cache" / "jars"
# The detector's own JVM function (jvm/src), compiled by `make jars` against pyspark's jars.
UDF_JAR = JARS_DIR / "twitchcrement-udf.jar"


class JvmSetupError(UserError, RuntimeError):
    pass


def artifact_id(jar: Path) -> str:
    """The Maven artifactId of a jar in the local repository (.../artifactId/version/artifactId-version.jar)."""
    return jar.parent.parent.name


def _ships(shipped: list[Path], artifact: str) -> bool:
    # pyspark's jars/ is flat: "artifactId-version.jar"
    prefix = artifact + "-"
    return any(j.name.startswith(prefix) and j.name[len(prefix) :][:1].isdigit() for j in shipped)


def pyspark_jars() -> list[Path]:
    import pyspark

    return sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))


def classpath(name: str) -> list[Path]:
    """The jars Maven resolved for jvm/NAME.pom.xml; for "spark", minus every artifact pyspark already ships, plus
    the detector's own (UDF_JAR)."""
    listing = JARS_DIR / f"{name}.classpath"
    if not listing.exists():
        raise JvmSetupError(f"JVM jars for {name} are not resolved ({listing} is missing): run `make jars`")
    jars = [Path(p) for p in listing.read_text().strip().split(":") if p]
    missing = [j for j in jars if not j.exists()]
    if missing:
        raise JvmSetupError(f"JVM jars for {name} are incomplete ({missing[0]} is missing): run `make jars`")
    if name == "spark":
        shipped = pyspark_jars()
        jars = [j for j in jars if not _ships(shipped, artifact_id(j))]
        if not UDF_JAR.exists():
            raise JvmSetupError(f"the detector's JVM function is not built ({UDF_JAR} is missing): run `make jars`")
        jars.append(UDF_JAR)
    return jars


def java_executable() -> str:
    """The `java` to run services with: $JAVA_HOME/bin/java, else the one on PATH."""
    return jdk_tool("java")


def jdk_tool(name: str) -> str:
    """A JDK program (java, keytool): from $JAVA_HOME/bin, else from PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / name).exists():
        return str(Path(home) / "bin" / name)
    found = shutil.which(name)
    if not found:
        raise JvmSetupError(
            f"{'Java' if name == 'java' else f'the JDK tool {name}'} not found: install a JDK 17 "
            "(apt-get install openjdk-17-jdk-headless) or set JAVA_HOME"
        )
    return found


def trust_store(ca_file: Path) -> tuple[Path, str]:
    """A PKCS#12 trust store of the CA certificates in a PEM file, made by keytool, for Java clients that take no
    PEM (spark-cassandra-connector). Kept under the system's temp folder, named by the file's content: the same CA
    file gives the same store. Returns its path and password (which guards no secret: a trust store holds public
    certificates only)."""
    import hashlib
    import re
    import subprocess
    import tempfile

    pem = ca_file.read_text()
    certificates = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if not certificates:
        raise JvmSetupError(f"{ca_file}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)")
    digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "twitchcrement-truststores"
    folder.mkdir(exist_ok=True)
    store, password = folder / f"{digest}.p12", "twitchcrement-" + digest
    if store.exists():
        return store, password
    partial = store.with_suffix(f".{os.getpid()}.tmp")
    for number, certificate in enumerate(certificates):  # keytool imports only a file's first certificate
        single = partial.with_suffix(f".{number}.pem")
        single.write_text(certificate + "\n")
        result = subprocess.run(
            [jdk_tool("keytool"), "-importcert", "-noprompt", "-alias", f"ca{number}", "-file", str(single),
             "-keystore", str(partial), "-storetype", "PKCS12", "-storepass", password],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        single.unlink()
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            why = result.stdout.strip() or result.stderr.strip()
            raise JvmSetupError(f"{ca_file}: keytool could not import certificate {number + 1}: {why}")
    partial.replace(store)
    return store, password
