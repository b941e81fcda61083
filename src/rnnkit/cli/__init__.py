"""`rnnkit <command>`: thin argument parsing over library functions."""
