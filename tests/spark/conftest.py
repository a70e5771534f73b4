"""One local[2] SparkSession per test module; skipped without pyspark or Java, failed in CI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import skip_or_fail


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    from warden.spark import SparkUnavailable, local_session, require_spark

    try:
        require_spark()
    except SparkUnavailable as exc:
        skip_or_fail(f"Spark tests need pyspark and Java: {exc}")
    session = local_session("local[2]", app_name="warden-tests",
                            conf={"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"})
    yield session
    session.stop()
