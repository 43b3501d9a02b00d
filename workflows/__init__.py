"""BatteryCRM's n8n workflows (n8n JSON files; the package marker lets the wheel ship them)."""
