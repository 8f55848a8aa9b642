"""hippox's private implementation: one concept per module (the public API is `hippox`)."""
