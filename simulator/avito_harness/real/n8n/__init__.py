"""The real n8n (npm, pinned): installed once into a cache directory, for users who test their workflows."""
