"""The pruning machinery written once for every model family: prefix, engine loop, signals, capture,
training hooks."""
