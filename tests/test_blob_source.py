"""BlobDocumentSource against a real Azurite (tests/azurite.py): listing, metadata, versions, streaming,
size limit, error mapping. Sync and flows over Blob are in test_sync_blob.py and test_flows.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from indexers.errors import ConfigError, TransientError
from indexers.retry import RetryPolicy
from pipelines.errors import DocumentTooLargeError, InvalidMetadataError, SourceError, UnsupportedFormatError
from pipelines.records import ItemProblem, SourceItem
from pipelines.sources.blob import BlobDocumentSource
from tests.azurite import FaultyTransport

pytestmark = pytest.mark.azurite


def source_for(azurite, container, **kw) -> BlobDocumentSource:
    return BlobDocumentSource(container=container.container_name, connection_string=azurite.connection_string, **kw)


def test_items_carry_name_version_metadata_groups_title_and_url(azurite, blob_container):
    blob_container.upload_blob("docs/handbook.txt", b"Parental leave is 20 days.",
                               metadata={"title": "Employee handbook", "Groups": "hr, staff ,", "Dept": "people"})
    blob_container.upload_blob("docs/notes/plain.md", b"# Notes\n\nSome notes.")
    blob_container.upload_blob("other/outside.txt", b"not under the prefix")
    src = source_for(azurite, blob_container, prefix="docs/")

    items = {i.id: i for i in src.list_items()}

    assert set(items) == {"docs/handbook.txt", "docs/notes/plain.md"}
    h = items["docs/handbook.txt"]
    assert (h.name, h.filepath, h.size, h.content_type) == ("handbook.txt", "docs/handbook.txt", 26, "text/plain")
    assert h.title == "Employee handbook"
    assert h.groups == ("hr", "staff")
    assert dict(h.metadata) == {"Dept": "people"}
    assert h.url == f"{azurite.account_url}/{blob_container.container_name}/docs/handbook.txt"
    assert h.version.startswith("md5:") and "+meta:" in h.version
    p = items["docs/notes/plain.md"]
    assert (p.title, p.groups, dict(p.metadata), p.content_type) == ("", (), {}, "text/markdown")
    assert p.version.startswith("md5:") and "+meta:" not in p.version


def test_version_is_stable_for_identical_bytes_and_changes_with_content_or_metadata(azurite, blob_container):
    src = source_for(azurite, blob_container)
    blob_container.upload_blob("a.txt", b"same bytes", metadata={"groups": "hr"})
    v1 = next(iter(src.list_items())).version
    blob_container.upload_blob("a.txt", b"same bytes", metadata={"groups": "hr"}, overwrite=True)  # new ETag
    assert next(iter(src.list_items())).version == v1
    blob_container.get_blob_client("a.txt").set_blob_metadata({"groups": "hr,finance"})  # ACL change
    v2 = next(iter(src.list_items())).version
    assert v2 != v1
    blob_container.upload_blob("a.txt", b"other bytes", metadata={"groups": "hr,finance"}, overwrite=True)
    assert next(iter(src.list_items())).version not in (v1, v2)


def test_etag_version_when_the_blob_has_no_content_md5(azurite, blob_container):
    blob = blob_container.get_blob_client("staged.txt")  # Put Block List: the service stores no MD5
    blob.stage_block("b1", b"part one ")
    blob.stage_block("b2", b"part two")
    blob.commit_block_list(["b1", "b2"])
    item = next(iter(source_for(azurite, blob_container).list_items()))
    props = blob.get_blob_properties()
    if props.content_settings.content_md5:
        pytest.skip("this Azurite version computes an MD5 for block lists")
    assert item.version == "etag:" + props.etag.strip('"')


def test_include_exclude_globs_and_folder_markers(azurite, blob_container):
    for name in ("a.txt", "b.md", "sub/c.txt", "sub/skip.tmp.txt", "img.png"):
        blob_container.upload_blob(name, b"x")
    blob_container.upload_blob("sub", b"", metadata={"hdi_isfolder": "true"})
    src = source_for(azurite, blob_container, include=("*.txt", "*.md"), exclude=("*.tmp.txt",))
    assert [i.id for i in src.list_items()] == ["a.txt", "b.md", "sub/c.txt"]


def test_listing_pages_lazily(azurite, blob_container):
    for n in range(7):
        blob_container.upload_blob(f"d{n}.txt", b"x")
    transport = FaultyTransport()
    src = source_for(azurite, blob_container, page_size=2, client_options={"transport": transport})
    it = iter(src.list_items())
    assert transport.requests == []  # nothing listed until iterated
    assert next(it).id == "d0.txt"
    assert len(transport.requests) == 1
    assert [i.id for i in it] == [f"d{n}.txt" for n in range(1, 7)]
    assert len(transport.requests) == 4  # 7 blobs, 2 per page


def test_open_streams_the_content_in_chunks(azurite, blob_container):
    data = bytes(range(256)) * (4096 * 9 + 7)  # ~9.4 MB: several 4 MiB range requests
    blob_container.upload_blob("big.bin", data, max_concurrency=2)
    transport = FaultyTransport()
    src = source_for(azurite, blob_container, client_options={"transport": transport})
    item = next(iter(src.list_items()))
    with src.open(item) as stream:
        first = stream.read(1000)
        gets_after_first_read = sum(1 for m, _ in transport.requests if m == "GET") - 1  # minus the listing
        rest = stream.read()
    assert first + rest == data
    assert gets_after_first_read == 1
    assert sum(1 for m, _ in transport.requests if m == "GET") - 1 == 3


def test_size_limit_refuses_before_downloading(azurite, blob_container):
    blob_container.upload_blob("reports/huge.txt", b"x" * 5000)
    transport = FaultyTransport()
    src = source_for(azurite, blob_container, max_bytes=1000, client_options={"transport": transport})
    item = next(iter(src.list_items()))
    with pytest.raises(DocumentTooLargeError) as info:
        src.open(item)
    assert info.value.doc_id == "reports/huge.txt"
    assert "reports/huge.txt" in str(info.value) and "1,000" in str(info.value)
    assert [m for m, _ in transport.requests] == ["GET"]  # the listing only, no download


def test_size_limit_also_holds_when_the_blob_grew_after_listing(azurite, blob_container):
    blob_container.upload_blob("grow.txt", b"small")
    src = source_for(azurite, blob_container, max_bytes=1000)
    item = next(iter(src.list_items()))
    blob_container.upload_blob("grow.txt", b"y" * 5000, overwrite=True)
    with pytest.raises(DocumentTooLargeError, match="grow.txt"):
        src.open(item).read()


def test_missing_blob_is_a_source_error_naming_it(azurite, blob_container):
    blob_container.upload_blob("gone.txt", b"x")
    src = source_for(azurite, blob_container)
    item = next(iter(src.list_items()))
    blob_container.delete_blob("gone.txt")
    with pytest.raises(SourceError) as info:
        src.open(item)
    assert info.value.doc_id == "gone.txt" and "gone.txt" in str(info.value)
    assert not isinstance(info.value, TransientError)


def test_missing_container_and_bad_credentials_are_source_errors(azurite):
    with pytest.raises(SourceError, match="no-such-container"):
        list(BlobDocumentSource(container="no-such-container", connection_string=azurite.connection_string).list_items())
    bad = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=Zby8")
    with pytest.raises(SourceError, match="access denied") as info:
        list(BlobDocumentSource(container="ccc", connection_string=bad).list_items())
    assert "Zby8" not in str(info.value)


def test_sas_token_auth_and_url_without_sas(azurite, blob_container):
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    from tests.azurite import ACCOUNT, KEY

    blob_container.upload_blob("s.txt", b"via sas")
    sas = generate_container_sas(ACCOUNT, blob_container.container_name, account_key=KEY,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    src = BlobDocumentSource(container=blob_container.container_name, account_url=azurite.account_url, sas_token=sas)
    item = next(iter(src.list_items()))
    assert src.open(item).read() == b"via sas"
    assert "sig=" not in item.url and "?" not in item.url
    assert "sig=" not in repr(src)


def test_503_is_transient_with_retry_after_and_the_sdk_does_not_retry(azurite, blob_container):
    blob_container.upload_blob("busy.txt", b"x")
    transport = FaultyTransport(fail=1, match="busy.txt", retry_after="7")
    src = source_for(azurite, blob_container, retry=RetryPolicy.off(), client_options={"transport": transport})
    item = next(iter(src.list_items()))
    with pytest.raises(TransientError) as info:
        src.open(item)
    assert info.value.doc_id == "busy.txt" and info.value.retry_after == 7.0 and "503" in str(info.value)
    assert info.value.attempts == 1
    assert sum(1 for _, url in transport.requests if "busy.txt" in url) == 1  # the SDK's retry_total=0: one attempt
    assert src.open(item).read() == b"x"


FAST = RetryPolicy(attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.02, max_retry_after_seconds=0.05)


def test_the_backend_retries_and_a_503_storm_costs_the_configured_attempts(azurite, blob_container):
    blob_container.upload_blob("busy.txt", b"x")
    transport = FaultyTransport(fail=1, match="busy.txt", retry_after="7")  # capped at 0.05 s by the policy
    src = source_for(azurite, blob_container, retry=FAST, client_options={"transport": transport})
    item = next(iter(src.list_items()))
    assert src.open(item).read() == b"x"
    assert sum(1 for _, url in transport.requests if "busy.txt" in url) == 2
    transport.requests.clear()
    transport.fail = 100
    with pytest.raises(TransientError) as info:
        src.open(item)
    assert info.value.attempts == 3 and "after 3 attempts" in str(info.value)
    assert sum(1 for _, url in transport.requests if "busy.txt" in url) == 3  # not 3 x anything


def test_a_listing_page_is_retried(azurite, blob_container):
    for n in range(3):
        blob_container.upload_blob(f"p{n}.txt", b"x")
    transport = FaultyTransport(fail=1, match="comp=list", skip=1, connection_error=True)  # the 2nd page, once
    src = source_for(azurite, blob_container, retry=FAST, page_size=2, client_options={"transport": transport})
    assert [i.id for i in src.list_items()] == ["p0.txt", "p1.txt", "p2.txt"]
    assert sum(1 for _, url in transport.requests if "comp=list" in url) == 3


def test_a_download_cut_short_resumes_at_its_offset(azurite, blob_container):
    body = bytes(range(256)) * 12  # 3 KiB, read in 1 KiB ranges
    blob_container.upload_blob("big.bin.txt", body)
    transport = FaultyTransport(fail=1, match="big.bin.txt", skip=1)  # the second range request fails
    src = source_for(azurite, blob_container, retry=FAST,
                     client_options={"transport": transport, "max_single_get_size": 1024, "max_chunk_get_size": 1024})
    item = next(iter(src.list_items()))
    assert src.open(item).read() == body
    ranges = [u for _, u in transport.requests if "big.bin.txt" in u]
    assert len(ranges) == 4  # 1st range, the failed 2nd, the resumed 2nd, the 3rd


def test_bad_groups_metadata_fails_that_blob_and_unsupported_types_are_skipped(azurite, blob_container):
    blob_container.upload_blob("ok.txt", b"fine", metadata={"groups": "hr"})
    blob_container.upload_blob("empty-groups.txt", b"x", metadata={"groups": " "})
    blob_container.upload_blob("hole.txt", b"x", metadata={"groups": "hr,,finance"})
    blob_container.upload_blob("tool.exe", b"MZ")
    entries = {e.id: e for e in source_for(azurite, blob_container).list_items()}
    assert isinstance(entries["ok.txt"], SourceItem) and entries["ok.txt"].groups == ("hr",)
    for bad in ("empty-groups.txt", "hole.txt"):
        problem = entries[bad]
        assert isinstance(problem, ItemProblem) and problem.status == "failed"
        assert isinstance(problem.error, InvalidMetadataError) and bad in str(problem.error)
    assert entries["tool.exe"].status == "skipped" and isinstance(entries["tool.exe"].error, UnsupportedFormatError)


def test_include_and_exclude_globs(azurite, blob_container):
    for name in ("kb/a.pdf", "kb/b.txt", "kb/drafts/c.pdf", "kb/d.md"):
        blob_container.upload_blob(name, b"%PDF" if name.endswith(".pdf") else b"x")
    src = source_for(azurite, blob_container, prefix="kb/", include=("*.pdf", "*.md"), exclude=("drafts/*",))
    assert [e.id for e in src.list_items()] == ["kb/a.pdf", "kb/d.md"]


def test_unreachable_service_is_transient():
    from tests.azurite import free_port

    src = BlobDocumentSource(
        container="c", connection_timeout=2,
        connection_string=f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                          f"BlobEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;")
    with pytest.raises(TransientError, match="did not answer"):
        list(src.list_items())


def test_configuration_is_checked_and_clients_are_lazy():
    with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        BlobDocumentSource(container="c")
    src = BlobDocumentSource(container="c", account_url="https://example.invalid")  # no credential lookup yet
    assert src._client is None
