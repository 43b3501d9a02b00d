"""The customer's n8n workflows, played in Python: one small module per workflow."""
