"""Where stored objects live (the `Storage` protocol: local disk, S3-compatible object storage, memory), and
the signed 24-hour links that serve them."""
