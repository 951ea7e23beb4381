"""Uploaded files: the vendor's file-hosting API (`/api/v1/files/...`, docs/files.md) served by reelgate itself,
so a local image becomes a `file_url` that a task's `image_urls` can name."""
