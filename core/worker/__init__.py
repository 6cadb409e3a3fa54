"""The agent runtime: claims pending conversations, holds them through a model, obeys the kill switch."""
