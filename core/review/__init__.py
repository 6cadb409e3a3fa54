"""Review machinery that is neither a read nor a change: the model-graded judge."""
