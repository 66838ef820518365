"""Wire contracts of injury-monitor: models, channel list, codecs, topics and Redis keys."""
