"""libmirror: two-way sync daemon."""
