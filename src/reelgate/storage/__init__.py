"""Where finished videos live, and the signed 24-hour links that serve them."""
