"""Local web app (extra [web]): a JSON API over the same functions as the CLI, and one page that uses it."""
