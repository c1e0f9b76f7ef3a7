"""Student agents: baselines (random, n-gram) and, later, causal-LM policies."""
