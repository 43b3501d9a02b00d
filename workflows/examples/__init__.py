"""Example exports of shops' workflows (a pre-rollout export: what `n8n check` and `run --workflows` judge)."""
