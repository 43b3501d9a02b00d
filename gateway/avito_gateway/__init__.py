"""The Avito messenger gateway ("MCP REST API Server"): Avito <-> n8n."""

__version__ = "0.1.0"
__all__ = ["__version__"]
