"""Server-rendered catalog page (Jinja2, plain HTML forms; no JavaScript framework)."""
