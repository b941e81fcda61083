"""Tasks: applications built on rnnkit the way a user would build them."""
