"""Image intake (fetch, decode, validate) and frame geometry for the engines."""
