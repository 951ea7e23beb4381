"""The storage a deployment's settings name: local disk (the embedded default) or an S3-compatible bucket."""

from __future__ import annotations

from reelgate.config import Settings
from reelgate.storage.base import Storage
from reelgate.storage.links import LinkSigner
from reelgate.storage.local import LocalStorage


def build_storage(settings: Settings, links: LinkSigner) -> Storage:
    location = settings.storage_location
    if location.path is not None:
        return LocalStorage(location.path, links)
    # Imported here: boto3 is slow to import, and a deployment on local disk never needs it.
    from reelgate.storage.s3 import S3Storage

    return S3Storage(
        bucket=location.bucket,
        prefix=location.prefix,
        links=links,
        presigned=settings.resolved_result_links == "presigned",
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        multipart_threshold_bytes=settings.s3_multipart_threshold_bytes,
    )
