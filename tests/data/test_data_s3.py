"""The same store code on s3://, against moto's real S3 server on loopback."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator

import pytest

from finmlops.config import Settings
from finmlops.data import DatasetStore, get_manifest, ingest, list_versions, read_bars
from finmlops.errors import StoreError

pytestmark = [pytest.mark.integration]

BUCKET = "finmlops-test"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from s3_support import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture
def s3_settings(s3_endpoint: str, settings: Callable[..., Settings],
                monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Settings:
    import boto3

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(key, raising=False)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    prefix = f"{request.node.name}-{dt.datetime.now().timestamp():.0f}"
    return settings(data__store_uri=f"s3://{BUCKET}/{prefix}", data__s3_endpoint_url=s3_endpoint,
                    data__start=dt.date(2020, 1, 1), data__end=dt.date(2020, 6, 30))


def test_ingest_list_read_round_trip(s3_settings: Settings) -> None:
    assert list_versions(s3_settings) == []
    with pytest.raises(StoreError):
        read_bars(s3_settings)
    first = ingest(s3_settings)
    again = ingest(s3_settings)
    assert first.created and not again.created and first.version == again.version
    (listed,) = list_versions(s3_settings)
    assert listed.version == first.version and listed.tickers == ["IBB", "SPY"]
    bars = read_bars(s3_settings)
    local = read_bars_local(s3_settings)
    assert bars.equals(local)
    assert get_manifest(s3_settings, first.version[:8]).rows == len(bars)
    newer = ingest(s3_settings, end=dt.date(2020, 7, 31))
    assert [m.version for m in list_versions(s3_settings)] == [newer.version, first.version]
    store = DatasetStore.from_settings(s3_settings)
    keys = store.fs.find(store.root)
    assert all("/staging/" not in k for k in keys)
    assert sum(k.endswith("manifest.json") for k in keys) == 2


def read_bars_local(s3_settings: Settings) -> object:
    """The same ingest into a local store, read back: S3 must not change a byte of content."""
    local = s3_settings.model_copy(update={
        "data": s3_settings.data.model_copy(update={"store_uri": None})})
    ingest(local)
    return read_bars(local)
