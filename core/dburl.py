from django.db import connection


def current_database_url() -> str:
    """The URL of the database this process is connected to right now (e.g.
    a test or benchmark database), for child processes started with
    DATABASE_URL."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    user = s.get("USER") or ""
    auth = (f"{user}:{s['PASSWORD']}@" if s.get("PASSWORD") else f"{user}@") if user else ""
    return f"postgres://{auth}{host}:{port}/{s['NAME']}"
