"""Where stored objects live (the `Storage` protocol: local disk, memory), and the signed 24-hour links that
serve them."""
