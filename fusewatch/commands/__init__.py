"""One module per ``fusewatch`` sub-command; each has ``register(commands)`` which adds its parser and sets
``run``, the function that executes it and returns the exit status."""
