"""Real parts users have: n8n itself (pinned, from npm), a PostgreSQL server (Debian's) and the CRM tables in it."""
